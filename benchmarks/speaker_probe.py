"""Whose voice is it? A first measurement for issue #33, with real weights: resemblyzer's GE2E
speaker encoder (its weights ship inside its PyPI wheel) on slots where Kokoro's five Japanese
voices take turns, each voice in turn the wearer.

    make speaker-probe   (installs librosa, webrtcvad-wheels and resemblyzer 0.1.4 first)

Each test slot (60 s) has the wearer and two other voices taking turns with pauses; a third of
the others' turns are soft (-12 dB), and every other slot has pink noise at SNR 10 dB. Speech
is found by the pipeline's own VAD; each 1.6 s window the encoder embeds (50 % overlap) is
the wearer's when its cosine to the wearer's profile is at least a threshold, then smoothed
over its neighbours in the segment. Profiles: from an enrollment recording (three of the
wearer's sentences alone), or automatic: the windows of three earlier days' slots clustered,
the largest loud cluster taken as the wearer. Accuracy is speech time: each true speech sample
covered by a window gets that window's verdict. Sentences for enrollment and for testing are
disjoint. Results: benchmarks/results/speaker_probe.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.ndimage import median_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import japanese_corpus as ja  # noqa: E402
from speech_corpus import SR, colored_noise, set_level  # noqa: E402

from watchme_pipeline.audio import speech_segments  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "speaker_probe.json"
ENROLL, TEST = range(0, 9), range(9, 18)  # sentence indexes: disjoint
SLOT = 60 * SR
WINDOW = int(1.6 * SR)  # the encoder's partial utterance


def turns(wearer: str, others: list[str], sentences: list[int], rng: np.random.Generator,
          wearer_share: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A 60 s slot of turns: (audio, truth per sample: 0 silence, 1 wearer, 2 other)."""
    audio, truth = np.zeros(SLOT, np.float32), np.zeros(SLOT, np.int8)
    at = int(rng.uniform(0.5, 2.0) * SR)
    k = 0
    while at < SLOT - SR:
        is_wearer = rng.random() < wearer_share
        voice = wearer if is_wearer else others[k % len(others)]
        speech = ja.speak(ja.SENTENCES[sentences[k % len(sentences)]][1], voice, 1.0)
        if not is_wearer and rng.random() < 1 / 3:
            speech = speech * 10 ** (-12 / 20)  # a bystander further away
        n = min(len(speech), SLOT - at)
        audio[at:at + n] += speech[:n]
        truth[at:at + n] = 1 if is_wearer else 2
        at += n + int(rng.uniform(0.3, 1.5) * SR)
        k += 1
    return audio, truth


def with_noise(audio: np.ndarray, rng: np.random.Generator, snr_db: float = 10.0) -> np.ndarray:
    voiced = audio[np.abs(audio) > 1e-4]
    level = 10 * np.log10(np.mean(voiced ** 2) + 1e-12)
    noise = set_level(colored_noise("pink", SLOT / SR, rng), level - snr_db)
    return (audio + noise[:len(audio)]).astype(np.float32)


def windows(encoder, audio: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The encoder's 1.6 s windows over the VAD's speech: (embeddings, (start, end, segment))."""
    embeds, spans = [], []
    for index, (start, end) in enumerate(speech_segments(audio)):
        piece = audio[start:end]
        if len(piece) < SR // 2:
            continue
        peak = np.abs(piece).max()
        _, partials, slices = encoder.embed_utterance(piece / max(peak, 1e-6) * 0.5,
                                                      return_partials=True)
        for emb, sl in zip(partials, slices):  # slices in samples of ``piece``
            embeds.append(emb)
            spans.append((start + sl.start, min(end, start + sl.stop), index))
    return np.array(embeds), spans


def auto_profile(encoder, days: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the earlier days' windows; the wearer's is the cluster with the most loud
    speech (the nearest voice is the most frequent and the loudest). Also the other
    clusters' means that hold at least 5 % of it: the voices around the wearer."""
    embeds, weights = [], []
    for audio in days:
        e, spans = windows(encoder, audio)
        embeds.append(e)
        weights += [float(np.sqrt(np.mean(audio[s:t] ** 2))) for s, t, _ in spans]
    x = np.concatenate(embeds)
    labels = fcluster(linkage(x, "average", metric="cosine"), t=0.35, criterion="distance")
    score = {c: sum(w for w, lab in zip(weights, labels) if lab == c) for c in set(labels)}
    top = max(score, key=score.get)
    means = {c: x[labels == c].mean(axis=0) for c in score}
    unit = {c: m / np.linalg.norm(m) for c, m in means.items()}
    others = [unit[c] for c in score if c != top and score[c] >= 0.05 * score[top]]
    return unit[top], np.array(others).reshape(-1, x.shape[1])


def recording_profile(encoder, wearer: str) -> np.ndarray:
    alone = np.concatenate([ja.speak(ja.SENTENCES[i][1], wearer, 1.0) for i in ENROLL[:3]])
    profile = encoder.embed_utterance(alone / np.abs(alone).max() * 0.5)
    return profile / np.linalg.norm(profile)


def clustered(embeds: np.ndarray, profile: np.ndarray, threshold: float) -> np.ndarray:
    """Context: the slot's windows clustered; a cluster is the wearer's when its mean is near
    the profile (a window alone is noisier than the voices it belongs with)."""
    if len(embeds) < 2:
        return (embeds @ profile) >= threshold
    labels = fcluster(linkage(embeds, "average", metric="cosine"), t=0.3, criterion="distance")
    wearer = np.zeros(len(embeds), bool)
    for c in set(labels):
        mean = embeds[labels == c].mean(axis=0)
        wearer[labels == c] = mean @ profile / np.linalg.norm(mean) >= threshold
    return wearer


def accuracy(embeds: np.ndarray, spans: list, truth: np.ndarray, profile: np.ndarray,
             threshold: float, smooth: int, score: np.ndarray | None = None
             ) -> tuple[float, float]:
    """(speech-time accuracy over the speech the windows cover, share of speech covered);
    ``smooth`` 0: by cluster of the slot's windows (``clustered``)."""
    verdict = np.zeros(len(truth), np.int8)  # 0 not covered, 1 wearer, 2 other
    if len(embeds):
        if score is None:
            score = embeds @ profile
        wearer = (clustered(embeds, profile, threshold) if smooth == 0
                  else score >= threshold)
        segments = np.array([s for _, _, s in spans])
        for seg in np.unique(segments):  # the majority of its neighbours in the segment
            idx = np.flatnonzero(segments == seg)
            if smooth > 1:
                wearer[idx] = median_filter(wearer[idx].astype(int), size=smooth,
                                            mode="nearest").astype(bool)
        for (start, end, _), w in zip(spans, wearer):
            verdict[start:end] = 1 if w else 2
    speech = truth > 0
    covered = speech & (verdict > 0)
    correct = covered & (verdict == truth)
    return float(correct.sum() / max(covered.sum(), 1)), float(covered.sum() / speech.sum())


def nearest(embeds: np.ndarray, spans: list, truth: np.ndarray, profile: np.ndarray,
            others: np.ndarray, smooth: int) -> tuple[float, float]:
    """A window is the wearer's when the wearer's profile is nearer than every other voice
    heard on earlier days (as ``accuracy``, with the margin over them as the score)."""
    if not len(others) or not len(embeds):
        return accuracy(embeds, spans, truth, profile, 0.8, smooth)
    margin = embeds @ profile - (embeds @ others.T).max(axis=1)
    return accuracy(embeds, spans, truth, profile, 0.0, smooth, score=margin)


def oracle(spans: list, truth: np.ndarray) -> float:
    """The ceiling of deciding per window: each window gets its majority truth."""
    verdict = np.zeros(len(truth), np.int8)
    for start, end, _ in spans:
        part = truth[start:end]
        voiced = part[part > 0]
        verdict[start:end] = 1 if len(voiced) and (voiced == 1).mean() >= 0.5 else 2
    speech = truth > 0
    covered = speech & (verdict > 0)
    return float((covered & (verdict == truth)).sum() / max(covered.sum(), 1))


def main() -> None:
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False)
    t0 = time.perf_counter()
    results = {}
    for w, wearer in enumerate(ja.VOICES):
        others = [v for v in ja.VOICES if v != wearer]
        rng = np.random.default_rng(100 + w)
        history = [turns(wearer, others[:2] if d % 2 else others[2:], list(ENROLL), rng)[0]
                   for d in range(3 * 2)]  # 3 earlier days, 2 slots each
        auto, around = auto_profile(encoder, history)
        profiles = {"automatic": auto, "enrollment recording": recording_profile(encoder, wearer)}
        tests = []
        for s in range(6):
            pair = [others[s % 4], others[(s + 1) % 4]]
            audio, truth = turns(wearer, pair, list(TEST), rng, wearer_share=0.5)
            tests.append((with_noise(audio, rng) if s % 2 else audio, truth))
        embedded = [(windows(encoder, a), t) for a, t in tests]
        results[wearer] = {"oracle windows (each window told its majority truth)": {
            "accuracy": round(float(np.mean([oracle(sp, t) for (_, sp), t in embedded])), 4)}}
        for name, profile in profiles.items():
            # Nearest profile: the wearer's against the voices heard around them before.
            for smooth in (1, 3):
                scores = [nearest(e, sp, t, profile, around, smooth) for (e, sp), t in embedded]
                results[wearer][f"{name} nearest (others from history) smooth={smooth}"] = {
                    "accuracy": round(float(np.mean([a for a, _ in scores])), 4),
                    "speech_covered": round(float(np.mean([c for _, c in scores])), 4)}
            for threshold in (0.75, 0.80, 0.85, 0.90):
                for smooth in (0, 1, 3):
                    scores = [accuracy(e, sp, t, profile, threshold, smooth)
                              for (e, sp), t in embedded]
                    results[wearer][f"{name} θ={threshold} smooth={smooth}"] = {
                        "accuracy": round(float(np.mean([a for a, _ in scores])), 4),
                        "speech_covered": round(float(np.mean([c for _, c in scores])), 4)}
        print(wearer, "done", flush=True)
    summary = {}
    for key in results[ja.VOICES[0]]:
        values = [results[v][key]["accuracy"] for v in ja.VOICES]
        summary[key] = {"min": round(min(values), 4), "mean": round(float(np.mean(values)), 4)}
    out = {"encoder": "resemblyzer 0.1.4 (GE2E, 256-d, weights from its wheel)",
           "voices": list(ja.VOICES), "slots_per_wearer": 6, "seconds": round(
               time.perf_counter() - t0, 1), "summary": summary, "per_wearer": results}
    RESULTS.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    for key, value in sorted(summary.items(), key=lambda kv: -kv[1]["min"]):
        print(f"{key:45} min {value['min']:.3f}  mean {value['mean']:.3f}")


if __name__ == "__main__":
    main()
