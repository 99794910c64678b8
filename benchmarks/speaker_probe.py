"""Whose voice is it? Measurements for issue #33 with real weights: resemblyzer's GE2E speaker
encoder (its weights ship inside its PyPI wheel) on slots where Kokoro's five Japanese voices
take turns, each voice in turn the wearer. Not part of the pipeline: it decides what the
speaker stage's rule can be.

    make speaker-probe   (installs librosa, scikit-learn, webrtcvad-wheels, resemblyzer 0.1.4)

Mixes: benchmarks/speaker_mixes.py. A device's history is 3 earlier days x 4 slots (half of
them in noise); the enrollment recording is three of the wearer's sentences alone; history
and test sentences are disjoint.

Turns: the pipeline's Silero VAD with a 150 ms pause ending a segment (the pipeline's 2 s
pause makes segments that span several speakers); each turn is embedded whole (the encoder
averages its 1.6 s windows). Accuracy is speech time: every true speech sample a turn covers
gets that turn's verdict (wearer or other).

Rules compared, per turn: cosine to the wearer's profile >= 0.80 (the issue's fixed
threshold); nearest (the wearer's profile nearer than every other voice's cluster mean from
the history); level alone; and a per-device backend: logistic regression on the history's
turns, each embedded clean and with four noises added (pink 10 dB, white 15, brown 5, pink
20 dB), optionally with the turn's level against the wearer's usual level as one more
feature, labelled by the truth (the ceiling), by the dominant cluster, or by level seeds (the
wearer is nearest: a turn within 6 dB of the history's loud turns), "widened by voice" (the
quieter turns a positive-unlabelled backend puts with the seeds: the wearer speaking softly),
the enrollment recording's turns joining the seeds; "relabelled": trained again on its own
labels of every history turn.

Results: benchmarks/results/speaker_probe.json and the block in docs/accuracy.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import japanese_corpus as ja  # noqa: E402
from speaker_mixes import ENROLL, MIXES, SR, TEST, mixed_slot, noisy, with_noise  # noqa: E402

from watchme_pipeline.audio import VadSettings, speech_segments  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "speaker_probe.json"
TURNS = VadSettings(min_silence_ms=150, speech_pad_ms=50)  # a soft reply is a turn of its own
AUGMENT = (("pink", 10.0), ("white", 15.0), ("brown", 5.0), ("pink", 20.0))  # (noise, SNR dB)
LEVEL_SEED_DB = 6.0
HISTORY_SLOTS = 12  # 3 earlier days x 4 slots, half of them in pink noise at SNR 10 dB
CLUSTER_DISTANCE = 0.35  # cosine distance of average linkage: history turns into voices


def embed(encoder, piece: np.ndarray) -> np.ndarray:
    return encoder.embed_utterance(piece / max(float(np.abs(piece).max()), 1e-6) * 0.5)


def turns(encoder, audio: np.ndarray, truth: np.ndarray, rng: np.random.Generator | None = None
          ) -> list[dict]:
    """The slot's turns: span, embedding, level, majority truth (and, given ``rng``, the
    embeddings of the turn with each of ``AUGMENT``'s noises added)."""
    found = []
    for start, end in speech_segments(audio, TURNS):
        piece = audio[start:end]
        if len(piece) < SR // 4:
            continue
        voiced = truth[start:end][truth[start:end] > 0]
        turn = {"start": start, "end": end, "embedding": embed(encoder, piece),
                "level": float(np.sqrt(np.mean(piece ** 2))),
                "wearer": bool(len(voiced) and (voiced == 1).mean() >= 0.5)}
        if rng is not None:
            turn["augmented"] = [embed(encoder, noisy(piece, k, s, rng)) for k, s in AUGMENT]
        found.append(turn)
    return found


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def voices(history: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The history's turns clustered into voices: (label per turn, weight per cluster label
    as speech time x level: the wearer is the nearest and most frequent voice)."""
    x = np.array([t["embedding"] for t in history])
    labels = fcluster(linkage(x, "average", metric="cosine"), t=CLUSTER_DISTANCE,
                      criterion="distance")
    weight = np.array([(t["end"] - t["start"]) * t["level"] for t in history])
    return labels, np.array([weight[labels == c].sum() for c in range(labels.max() + 1)])


def nearest_rule(history: list[dict], profile: np.ndarray):
    """The wearer's profile against the other voices of the history (cluster means, those
    holding >= 5 % of the largest's weight; the cluster nearest the profile is the wearer)."""
    labels, weight = voices(history)
    x = np.array([t["embedding"] for t in history])
    kept = [c for c in set(labels) if weight[c] >= 0.05 * weight.max()]
    means = {c: unit(x[labels == c].mean(axis=0)) for c in kept}
    own = max(kept, key=lambda c: means[c] @ profile)
    others = np.array([means[c] for c in kept if c != own]).reshape(-1, x.shape[1])
    return lambda t: bool(t["embedding"] @ profile > (others @ t["embedding"]).max()
                          if len(others) else t["embedding"] @ profile >= 0.8)


def automatic_labels(history: list[dict]) -> np.ndarray:
    labels, weight = voices(history)
    return labels == int(np.argmax(weight))


def level_labels(history: list[dict], below_db: float = LEVEL_SEED_DB) -> np.ndarray:
    """The wearer is nearest the microphone: a turn within ``below_db`` of the history's
    loud turns (its 90th percentile) is a seed of the wearer's voice."""
    levels = 20 * np.log10(np.array([t["level"] for t in history]) + 1e-9)
    return levels >= np.percentile(levels, 90) - below_db


def backend(history: list[dict], wearer: np.ndarray, augmented: bool = True,
            use: np.ndarray | None = None, level: bool = False):
    """Logistic regression on the history's turns labelled ``wearer`` (with their noisy
    copies when ``augmented``): the direction that tells this device's voices apart."""
    x, y = [], []
    # The turn's level against the wearer's usual level (the seeds' median), in 10 dB.
    reference = float(np.median([db(t) for t, w in zip(history, wearer) if w]))
    for turn, is_wearer, used in zip(history, wearer, np.ones(len(history), bool)
                                     if use is None else use):
        if not used:
            continue
        for e in [turn["embedding"]] + (turn["augmented"] if augmented else []):
            x.append(np.r_[e, loudness(turn, reference)] if level else e)
            y.append(bool(is_wearer))
    if len(set(y)) < 2:  # one voice only: nothing to tell apart
        return lambda t: bool(y[0])
    model = classifier().fit(np.array(x), np.array(y))
    return lambda t: bool(model.predict(
        (np.r_[t["embedding"], loudness(t, reference)] if level else t["embedding"])[None])[0])


def db(turn: dict) -> float:
    return 20 * float(np.log10(turn["level"] + 1e-9))


def loudness(turn: dict, reference_db: float) -> float:
    return (db(turn) - reference_db) / 10


def accuracy(slots: list[tuple[list[dict], np.ndarray]], is_wearer) -> float:
    """Speech-time accuracy over the speech the turns cover (mean over slots)."""
    scores = []
    for found, truth in slots:
        verdict = np.zeros(len(truth), np.int8)
        for t in found:
            verdict[t["start"]:t["end"]] = 1 if is_wearer(t) else 2
        covered = (truth > 0) & (verdict > 0)
        scores.append((covered & (verdict == truth)).sum() / max(covered.sum(), 1))
    return round(float(np.mean(scores)), 4)


def probe(encoder, mixes: str, w: int, wearer: str) -> dict[str, float]:
    others = [v for v in ja.VOICES if v != wearer]
    rng = np.random.default_rng(100 + w)
    history = []
    for slot in range(HISTORY_SLOTS):  # each pair of others heard clean and in noise
        audio, truth = mixed_slot(mixes, wearer, others[:2] if slot % 2 else others[2:],
                                  list(ENROLL), rng)
        found = turns(encoder, with_noise(audio, rng) if slot // 2 % 2 else audio, truth, rng)
        history += [t | {"slot": slot} for t in found]
    tests = []
    for s in range(6):
        audio, truth = mixed_slot(mixes, wearer, [others[s % 4], others[(s + 1) % 4]], list(TEST),
                                  rng, wearer_share=0.5)
        tests.append((turns(encoder, with_noise(audio, rng) if s % 2 else audio, truth), truth))
    noisy_slots = tests[1::2]
    recording = np.concatenate([ja.speak(ja.SENTENCES[i][1], wearer, 1.0) for i in ENROLL[:3]])
    enrolled = unit(embed(encoder, recording))
    own = turns(encoder, recording, np.ones(len(recording), np.int8), rng)
    nearest = nearest_rule(history, enrolled)
    truth = np.array([t["wearer"] for t in history])
    by_level = level_labels(history)
    by_enrollment = np.array([nearest(t) for t in history])
    by_clusters = automatic_labels(history)
    ceiling = backend(history, truth)
    by_presence = presence_seeds(history)
    widened = widened_by_voice(history, by_level)
    with_own = history + own
    own_widened = widened_by_voice(with_own, np.r_[by_level, np.ones(len(own), bool)])
    usual_db = float(np.median([db(h) for h, w in zip(history, by_level) if w]))
    return {
        "cosine >= 0.80 to the enrollment profile": accuracy(
            tests, lambda t: t["embedding"] @ enrolled >= .8),
        "nearest: enrollment profile vs the history's voices": accuracy(tests, nearest),
        "backend, true labels (the ceiling)": accuracy(tests, ceiling),
        "backend, true labels: noisy slots": accuracy(noisy_slots, ceiling),
        "backend without noisy copies, true labels: noisy slots": accuracy(
            noisy_slots, backend(history, truth, augmented=False)),
        "automatic: backend on the dominant cluster": accuracy(
            tests, backend(history, by_clusters)),
        "level alone: within 6 dB of the wearer's usual level": accuracy(
            tests, lambda t: db(t) >= usual_db - LEVEL_SEED_DB),
        "automatic: level seeds, backend, relabelled": accuracy(
            tests, relabelled(history, by_level)),
        "automatic: level seeds, backend with level, relabelled": accuracy(
            tests, relabelled(history, by_level, level=True)),
        "**automatic: level seeds widened by voice, backend, relabelled**": accuracy(
            tests, relabelled(history, widened)),
        "**automatic: as above, backend with level**": accuracy(
            tests, relabelled(history, widened, level=True)),
        "**enrollment: its turns joining the seeds, widened, backend with level**": accuracy(
            tests, relabelled(with_own, own_widened, level=True)),
        "automatic: seeds present in every slot, widened, backend, relabelled": accuracy(
            tests, relabelled(history, widened_by_voice(history, by_presence))),
        "**automatic: seeds present and loud, widened, backend, relabelled**": accuracy(
            tests, relabelled(history, widened_by_voice(history, by_presence & by_level))),
        "history's turns labelled right by level": share(by_level == truth),
        "history's turns labelled right by level widened by voice": share(widened == truth),
        "history's turns labelled right by the enrollment": share(by_enrollment == truth),
        "history's turns labelled right by clustering": share(by_clusters == truth),
        "history's seeds by presence that are the wearer's": share(truth[by_presence]),
    }


def widened_by_voice(history: list[dict], seeds: np.ndarray, rounds: int = 2) -> np.ndarray:
    """The seeds (loud turns: surely the wearer's) plus the quieter turns in the wearer's
    voice: a backend learns seeds against all other turns (positive-unlabelled learning); a
    turn whose held-out score reaches half the seeds' mean score joins them (Elkan & Noto's
    calibration: the unlabelled set holds the wearer's soft turns too)."""
    wearer = seeds.copy()
    for _ in range(rounds):
        score = held_out(history, wearer)[:, 1]
        wearer = wearer | (score >= 0.5 * score[wearer].mean())
    return wearer


def presence_seeds(history: list[dict]) -> np.ndarray:
    """The wearer is in every slot, the others come and go: a backend learns which slot a
    turn came from; the half of the turns whose slot it can tell least (the highest entropy of
    its held-out prediction) are the seeds."""
    per_turn = held_out(history, np.array([t["slot"] for t in history]))
    entropy = -(per_turn * np.log(per_turn + 1e-12)).sum(axis=1)
    return entropy >= np.median(entropy)


def held_out(history: list[dict], labels: np.ndarray) -> np.ndarray:
    """Per turn, the class probabilities (classes 0..max, False/True for a bool) of a backend
    that did not see it: 5 folds, a turn's noisy copies in its fold, averaged over them."""
    from sklearn.model_selection import GroupKFold

    copies = len(history[0]["augmented"]) + 1
    x = np.array([e for t in history for e in [t["embedding"]] + t["augmented"]])
    y = np.repeat(labels, copies)
    turn_of = np.repeat(np.arange(len(history)), copies)
    proba = np.zeros((len(x), int(labels.max()) + 1))
    for fit, held in GroupKFold(5).split(x, y, turn_of):
        model = classifier().fit(x[fit], y[fit])
        proba[np.ix_(held, model.classes_.astype(int))] = model.predict_proba(x[held])
    return proba.reshape(len(history), copies, -1).mean(axis=1)


def classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=0.1, class_weight="balanced", max_iter=5000))


def share(right: np.ndarray) -> float:
    return round(float(right.mean()), 4)


def relabelled(history: list[dict], seeds: np.ndarray, use: np.ndarray | None = None,
               level: bool = False, augmented: bool = True):
    """The backend trained on the seed labels, then again on its own labels of every turn
    (a turn the seeds got wrong is usually put right by the voices around it)."""
    first = backend(history, seeds, use=use, level=level, augmented=augmented)
    return backend(history, np.array([first(t) for t in history]), level=level,
                   augmented=augmented)


def main() -> None:
    from report import write_page
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    t0 = time.perf_counter()
    out = {"encoder": "resemblyzer 0.1.4 (GE2E, 256-d, weights from its wheel)",
           "command": "make speaker-probe", "voices": list(ja.VOICES), "test_slots": 6,
           "history_slots": HISTORY_SLOTS, "turns": f"Silero VAD, {TURNS.min_silence_ms} ms pauses",
           "mixes": {}}
    for mixes in MIXES:
        per_wearer = {wearer: probe(encoder, mixes, w, wearer)
                       for w, wearer in enumerate(ja.VOICES)}
        summary = {key: {"min": min(per_wearer[v][key] for v in ja.VOICES),
                         "mean": round(float(np.mean([per_wearer[v][key]
                                                      for v in ja.VOICES])), 4)}
                   for key in per_wearer[ja.VOICES[0]]}
        out["mixes"][mixes] = {"summary": summary, "per_wearer": per_wearer}
        for key, value in summary.items():
            print(f"{mixes:5} {key:68} min {value['min']:.3f}  mean {value['mean']:.3f}",
                  flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    write_page("accuracy.md")


if __name__ == "__main__":
    main()
