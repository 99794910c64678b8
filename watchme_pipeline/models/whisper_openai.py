"""The openai-whisper engine's decode: short windows without timestamps (batched when
greedy), long ones with timestamps, continued after an early end as Whisper's ``transcribe``
seeks; the temperature ladder for decodes that need it. ``transcribe.py`` calls it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE
from watchme_pipeline.models.transcribe import (
    _MEL_HOP,
    WhisperSettings,
    Window,
    keep,
    needs_fallback,
)


def _mel(model, audio: np.ndarray):
    import torch
    import whisper

    return whisper.log_mel_spectrogram(
        whisper.pad_or_trim(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))),
        model.dims.n_mels)


def _detect_openai(model, audio: np.ndarray) -> str:
    import torch

    with torch.inference_mode():
        _, probs = model.detect_language(_mel(model, audio))
    return max(probs, key=probs.get)


def _decode_openai(model, windows: list[Window], settings: WhisperSettings
                   ) -> Iterator[tuple[Window, list]]:
    """openai-whisper: a short window (one or a few utterances) decoded without timestamps,
    at temperature 0 with the beam one at a time (greedy: ``batch_size`` together); a long
    one with timestamps, continued from its last timestamp after an early end, as Whisper's
    ``transcribe`` seeks (``timestamps_from_s``). A decode that needs it is decoded again
    alone at the next temperatures."""
    import torch
    import whisper

    batch_size = 1 if settings.beam_size > 1 else settings.batch_size
    by_language: dict[str | None, list[Window]] = {}
    for w in windows:
        by_language.setdefault(w.language, []).append(w)

    def batched(batch: list[Window], language: str | None) -> Iterator[tuple[Window, list]]:
        if not batch:
            return
        mel = torch.stack([_mel(model, x.audio) for x in batch])
        results = whisper.decode(model, mel, _options(language, 0, settings))
        for j, (x, result) in enumerate(zip(batch, results)):
            yield x, [_fallback(model, mel[j], result, language, settings)]

    with torch.inference_mode():
        for language, group in by_language.items():
            tokenizer = whisper.tokenizer.get_tokenizer(
                model.is_multilingual, num_languages=model.num_languages, language=language,
                task="transcribe")
            batch: list[Window] = []
            for w in group:  # in order: a slot's windows are joined as they come
                if len(w.audio) > settings.timestamps_from_s * SAMPLE_RATE:
                    yield from batched(batch, language)
                    batch = []
                    yield w, list(_seek(model, w.audio, language, settings, tokenizer))
                    continue
                batch.append(w)
                if len(batch) == batch_size:
                    yield from batched(batch, language)
                    batch = []
            yield from batched(batch, language)


def _options(language: str | None, temperature_index: int, settings: WhisperSettings,
             timestamps: bool = False):
    import whisper

    temperature = settings.temperatures[temperature_index]
    beam = settings.beam_size if temperature == 0 and settings.beam_size > 1 else None
    return whisper.DecodingOptions(
        task="transcribe", language=language, temperature=temperature, beam_size=beam,
        sample_len=settings.sample_len, without_timestamps=not timestamps, fp16=False)


def _fallback(model, mel, result, language: str | None, settings: WhisperSettings,
              timestamps: bool = False):
    """Whisper's temperature fallback on one decode, seeded: the same audio, the same text."""
    import torch
    import whisper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for i in range(1, len(settings.temperatures)):
            if not needs_fallback(result, settings):
                break
            try:
                result = whisper.decode(model, mel, _options(language, i, settings,
                                                             timestamps))
            except ValueError:
                # Sampling from all-masked (NaN) logits: keep the last decode, which the
                # keep rule then judges.
                break
    return result


def _seek(model, audio: np.ndarray, language: str | None, settings: WhisperSettings,
          tokenizer) -> Iterator:
    """One long window decoded with timestamps: after a decode that ends before the window
    does, the rest is decoded from its last timestamp (Whisper's ``transcribe`` seek, on the
    mel it computes the same way); one result per piece, its text what the piece kept."""
    import dataclasses

    import torch
    import whisper
    from whisper.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES

    mel = whisper.log_mel_spectrogram(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), model.dims.n_mels,
        padding=N_SAMPLES)
    frames = len(audio) // HOP_LENGTH
    stride = N_FRAMES // model.dims.n_audio_ctx  # mel frames per timestamp step
    seek = 0
    while seek < frames:
        size = min(N_FRAMES, frames - seek)
        segment = whisper.pad_or_trim(mel[:, seek:seek + size], N_FRAMES)
        result = _fallback(
            model, segment,
            whisper.decode(model, segment, _options(language, 0, settings, timestamps=True)),
            language, settings, timestamps=True)
        step, tokens = size, list(result.tokens)
        # Only after text that is kept: what follows silence, a loop or sampled nonsense is
        # not speech to go on from (make eval: babble went on into a second 224-token loop).
        if keep(result, settings):
            step, tokens = _consumed(tokens, size, stride, tokenizer.timestamp_begin)
        yield dataclasses.replace(result, tokens=tokens, text=tokenizer.decode(
            [t for t in tokens if t < tokenizer.timestamp_begin]))
        seek += step


def _consumed(tokens: list[int], size: int, stride: int, timestamp_begin: int
              ) -> tuple[int, list[int]]:
    """How far a decode with timestamps got (mel frames) and the tokens it completed: up to
    its last pair of timestamps, unless it ended on a single one (the text runs to the end).
    Under a second in, the decode is taken whole: a window is at most 30 pieces."""
    stamps = [t >= timestamp_begin for t in tokens]
    closed = [i + 1 for i in range(len(stamps) - 1) if stamps[i] and stamps[i + 1]]
    if closed and stamps[-2:] != [False, True]:
        step = (tokens[closed[-1] - 1] - timestamp_begin) * stride
        if step >= SAMPLE_RATE // _MEL_HOP:  # a second
            return min(step, size), tokens[:closed[-1]]
    return size, tokens
