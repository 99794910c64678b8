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
    # Below this level a slot is silence: AST is not run and the slot gets "Silence" (saves
    # about 17 s of CPU per audio minute with AST base on 2 cores).
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
    silent = {slot for slot, a in audios.items() if rms_dbfs(a.samples) < settings.silence_dbfs}
    for slot, audio in audios.items():
        if slot in silent:
            continue
        x = audio.samples
        # A slot shorter than one window is padded (by the extractor), never skipped.
        for start in range(0, max(len(x), 1), WINDOW_SAMPLES):
            window = x[start : start + WINDOW_SAMPLES]
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
        if slot in silent:
            windows_ = [{"time": round(t / SAMPLE_RATE, 2), "events": [dict(SILENCE)]}
                        for t in range(0, max(len(audios[slot].samples), 1), WINDOW_SAMPLES)]
            out[slot] = SlotEvents(windows=windows_, top=[dict(SILENCE)])
            continue
        if not items:
            out[slot] = SlotEvents([], [])
            continue
        mean = np.mean([p for _, p in items], axis=0)
        out[slot] = SlotEvents(
            windows=[{"time": round(t, 2), "events": _top(p, labels, settings)} for t, p in items],
            top=_top(mean, labels, settings),
        )
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
