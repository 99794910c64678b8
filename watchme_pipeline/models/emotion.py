"""Speech emotion with a wav2vec2 classifier, on a slot's speech segments only (the Silero
VAD segments that Whisper decodes too)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio

# SUPERB-ER label -> column of emotion_superb
LABEL_COLUMNS = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"}
# 5 s chunks: near the length of the utterances SUPERB-ER learnt from (IEMOCAP, ~4.5 s), and
# wav2vec2's convolutional front end peaks at ~60 MB a second of audio (make bench): 10 s
# chunks put an emotion step over a 1.2 GB process limit.
CHUNK_SAMPLES = 5 * SAMPLE_RATE


@dataclass(frozen=True)
class EmotionSettings:
    min_voiced_s: float = 1.0
    chunk_s: float = CHUNK_SAMPLES / SAMPLE_RATE
    # 6 x 10 s at once peaked 1 GB above the model (make bench); not part of the results
    batch_size: int = field(default=1, repr=False)


def logits(model: Any, values: np.ndarray) -> np.ndarray:
    """The classifier's logits for a batch of waveforms: on ONNX Runtime straight from numpy
    (no torch in the process), on PyTorch under inference mode."""
    if getattr(model, "runtime", "pytorch") == "onnxruntime":
        return model(values).logits
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(values)).logits.numpy()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def classify_emotion(
    model, extractor, audios: Mapping[str, DecodedAudio],
    settings: EmotionSettings = EmotionSettings(),
) -> dict[str, dict[str, float] | None]:
    """Per slot, label -> probability (weighted by chunk length), or None with no voice."""
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    chunks: list[tuple[str, np.ndarray]] = []
    for slot, audio in audios.items():
        if audio.voiced_seconds < settings.min_voiced_s:
            continue
        voiced = audio.voiced_samples()
        size = int(settings.chunk_s * SAMPLE_RATE)
        for start in range(0, len(voiced), size):
            chunk = voiced[start : start + size]
            if len(chunk) >= SAMPLE_RATE // 2:
                chunks.append((slot, chunk))
    # Equal lengths batch without padding (wav2vec2-base takes no attention mask).
    chunks.sort(key=lambda c: len(c[1]))
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    i = 0
    while i < len(chunks):
        n = len(chunks[i][1])
        j = i
        while j < len(chunks) and j - i < settings.batch_size and len(chunks[j][1]) == n:
            j += 1
        batch = chunks[i:j]
        values = extractor([c for _, c in batch], sampling_rate=SAMPLE_RATE,
                           return_tensors="np")["input_values"]
        probs = softmax(logits(model, np.asarray(values, dtype=np.float32)))
        for (slot, c), p in zip(batch, probs):
            sums[slot] = sums.get(slot, 0) + p * len(c)
            weights[slot] = weights.get(slot, 0.0) + len(c)
        i = j
    return {
        slot: (
            {label: round(float(v), 4) for label, v in zip(labels, sums[slot] / weights[slot])}
            if slot in sums
            else None
        )
        for slot in audios
    }
