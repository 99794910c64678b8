"""AudioSet sound events with AST: 10.24 s windows, sigmoid scores (multi-label)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, rms_dbfs
from watchme_pipeline.slots import SLOTS

WINDOW_SAMPLES = int(10.24 * SAMPLE_RATE)
SILENCE = {"label": "Silence", "score": 1.0}


@dataclass(frozen=True)
class EventSettings:
    top_k: int = 5
    threshold: float = 0.1
    # Measured with AST base on 2 cores: 1.54 s/window one at a time, 1.92 s in pairs, 1.68 s
    # in fours. Batching buys nothing on CPU here, so windows go one by one.
    batch_size: int = field(default=1, repr=False)
    # Below this level (RMS) a window is silence: AST is not run on it and it gets "Silence"
    # (a silent slot costs no model time at all; model time follows sound, not clock time).
    silence_dbfs: float = -55.0


@dataclass(frozen=True)
class SlotEvents:
    windows: list[dict]  # behavior_yamnet format: [{"time": 0.0, "events": [{label, score}]}]
    top: list[dict]  # the slot's top-k labels by mean score over its windows


def _top(scores: np.ndarray, labels: list[str], settings: EventSettings) -> list[dict]:
    order = np.argsort(-scores)[: settings.top_k]
    return [
        {"label": labels[i], "score": round(float(scores[i]), 4)}
        for i in order
        if scores[i] >= settings.threshold
    ]


def classify_events(
    model, extractor, audios: Mapping[str, DecodedAudio], settings: EventSettings = EventSettings()
) -> dict[str, SlotEvents]:
    import torch

    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    windows: list[tuple[str, float, np.ndarray]] = []
    silent_windows: dict[str, list[float]] = {slot: [] for slot in audios}
    for slot, audio in audios.items():
        x = audio.samples
        # A slot shorter than one window is padded (by the extractor), never skipped.
        for start in range(0, max(len(x), 1), WINDOW_SAMPLES):
            window = x[start : start + WINDOW_SAMPLES]
            if rms_dbfs(window) < settings.silence_dbfs:
                silent_windows[slot].append(start / SAMPLE_RATE)
                continue
            if len(window) < SAMPLE_RATE:  # the filterbank needs a few frames: pad with silence
                window = np.pad(window, (0, SAMPLE_RATE - len(window)))
            windows.append((slot, start / SAMPLE_RATE, window))

    per_slot: dict[str, list[tuple[float, np.ndarray]]] = {slot: [] for slot in audios}
    with torch.inference_mode():
        for i in range(0, len(windows), settings.batch_size):
            batch = windows[i : i + settings.batch_size]
            inputs = extractor(
                [w for _, _, w in batch], sampling_rate=SAMPLE_RATE, return_tensors="pt"
            )
            probs = torch.sigmoid(model(**inputs).logits).numpy()
            for (slot, t, _), p in zip(batch, probs):
                per_slot[slot].append((t, p))

    out = {}
    for slot, items in per_slot.items():
        timeline = [(t, _top(p, labels, settings)) for t, p in items]
        timeline += [(t, [dict(SILENCE)]) for t in silent_windows[slot]]
        timeline.sort(key=lambda te: te[0])
        # The slot's labels: the mean over the windows that had sound; Silence if none had.
        top = (_top(np.mean([p for _, p in items], axis=0), labels, settings) if items
               else [dict(SILENCE)])
        out[slot] = SlotEvents(windows=[{"time": round(t, 2), "events": e} for t, e in timeline],
                               top=top)
    return out


def daily_summary(top_by_slot: Mapping[str, list[dict]]) -> tuple[list[dict], dict]:
    """behavior_summary: a ranking of labels by slots they top, and each slot's labels."""
    counts: Counter[str] = Counter()
    for top in top_by_slot.values():
        counts.update(e["label"] for e in top)
    ranking = [{"event": label, "count": n} for label, n in counts.most_common()]
    time_blocks = {
        slot: ([e["label"] for e in top_by_slot[slot]] if slot in top_by_slot else None)
        for slot in SLOTS
    }
    return ranking, time_blocks
