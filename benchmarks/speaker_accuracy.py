"""Issue #33's targets, on the pipeline's own code with real weights: the speakers stage's turn
finding and embedding (``models/speaker.py``, resemblyzer's encoder from its wheel) and its
wearer rule (``speaker_profile.py``), on slots where Kokoro's five Japanese voices take turns
(benchmarks/speaker_mixes.py), each voice in turn the wearer.

    make speaker-accuracy

Per wearer: a device history of 3 earlier days x 4 slots of 60 s (half in pink noise at SNR
10 dB), the profile built from it as the stage builds it (automatic), and again with a
3-sentence enrollment recording; 6 held-out slots (every other one noisy, other sentences)
scored in speech time: each true speech sample a turn covers gets the turn's verdict. The
step's cost is make bench's (docs/performance.md).

Results: benchmarks/results/speaker_accuracy.json and the block in docs/accuracy.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import japanese_corpus as ja  # noqa: E402
from speaker_mixes import ENROLL, MIXES, SR, TEST, mixed_slot, with_noise  # noqa: E402

from watchme_pipeline.audio import DecodedAudio  # noqa: E402
from watchme_pipeline.models.speaker import find_turns, load_encoder, wheel_weights  # noqa: E402
from watchme_pipeline.speaker_profile import History, build_profile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "speaker_accuracy.json"
HISTORY_DAYS, SLOTS_PER_DAY, TEST_SLOTS = 3, 4, 6


def turns_of(encoder, audio: np.ndarray) -> list:
    return find_turns(encoder, DecodedAudio(audio.astype(np.float32), SR, 1, "mix"))


def history(turns: list[tuple[int, object]], enrolled: list) -> History:
    rows = [(day, t, False) for day, t in turns] + [(-1, t, True) for t in enrolled]
    return History(embeddings=np.array([t.embedding for _, t, _ in rows]),
                   levels_db=np.array([t.level_db for _, t, _ in rows]),
                   days=np.array([d for d, _, _ in rows]),
                   enrolled=np.array([e for _, _, e in rows]))


def accuracy(slots: list, profile) -> float:
    """Speech-time accuracy over the speech the turns cover (mean over slots)."""
    scores = []
    for found, truth in slots:
        verdict = np.zeros(len(truth), np.int8)
        if found:
            p = profile.wearer_probability(np.array([t.embedding for t in found]),
                                           np.array([t.level_db for t in found]))
            for t, wearer in zip(found, p >= 0.5):
                verdict[t.start:t.end] = 1 if wearer else 2
        covered = (truth > 0) & (verdict > 0)
        scores.append((covered & (verdict == truth)).sum() / max(covered.sum(), 1))
    return round(float(np.mean(scores)), 4)


def probe(encoder, mixes: str, w: int, wearer: str) -> dict:
    others = [v for v in ja.VOICES if v != wearer]
    rng = np.random.default_rng(100 + w)
    past = []
    for slot in range(HISTORY_DAYS * SLOTS_PER_DAY):  # each pair of others clean and in noise
        audio, _ = mixed_slot(mixes, wearer, others[:2] if slot % 2 else others[2:],
                              list(ENROLL), rng)
        audio = with_noise(audio, rng) if slot // 2 % 2 else audio
        past += [(slot // SLOTS_PER_DAY, t) for t in turns_of(encoder, audio)]
    tests = []
    for s in range(TEST_SLOTS):
        audio, truth = mixed_slot(mixes, wearer, [others[s % 4], others[(s + 1) % 4]],
                                  list(TEST), rng, wearer_share=0.5)
        tests.append((turns_of(encoder, with_noise(audio, rng) if s % 2 else audio), truth))
    recording = np.concatenate([ja.speak(ja.SENTENCES[i][1], wearer, 1.0) for i in ENROLL[:3]])
    own = turns_of(encoder, recording)
    out = {}
    for name, enrolled in (("automatic", []), ("with enrollment", own)):
        profile = build_profile(history(past, enrolled))
        out[name] = accuracy(tests, profile) if profile else None
    return out


def main() -> None:
    from report import write_page

    encoder = load_encoder(str(wheel_weights()))
    t0 = time.perf_counter()
    out = {"command": "make speaker-accuracy", "encoder": "resemblyzer 0.1.4 (weights from "
           "its wheel)", "voices": list(ja.VOICES), "history": f"{HISTORY_DAYS} days x "
           f"{SLOTS_PER_DAY} slots of 60 s", "test_slots": TEST_SLOTS, "mixes": {}}
    for mixes in MIXES:
        per_wearer = {v: probe(encoder, mixes, w, v) for w, v in enumerate(ja.VOICES)}
        summary = {}
        for rule in ("automatic", "with enrollment"):
            values = [per_wearer[v][rule] or 0.0 for v in ja.VOICES]
            summary[rule] = {"min": min(values), "mean": round(float(np.mean(values)), 4)}
            print(f"{mixes:18} {rule:16} min {summary[rule]['min']:.3f} "
                  f"mean {summary[rule]['mean']:.3f}", flush=True)
        out["mixes"][mixes] = {"summary": summary, "per_wearer": per_wearer}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    if "--no-page" not in sys.argv:
        write_page("accuracy.md")


if __name__ == "__main__":
    main()
