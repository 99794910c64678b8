"""Speech to text with openai-whisper, gated so silence and noise never become text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio

CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper's fixed 30 s window
_SPECIAL = re.compile(r"<\|[^|]*\|>")
# One phrase repeated 4+ times in a row is a decoding loop (the old fleet saw 146 repeats).
_REPEAT = re.compile(r"(.{2,40}?)(?:\s*\1){3,}", re.DOTALL)


@dataclass(frozen=True)
class WhisperSettings:
    language: str | None = "ja"  # None: detect per chunk
    voice_gate: bool = True  # False decodes every chunk (benchmarks, tests of the keep rule)
    min_voiced_s: float = 1.0  # gate: slots with less voiced audio are not decoded at all
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    sample_len: int = 96  # token bound per 30 s chunk: random or confused weights cannot loop
    batch_size: int = 4  # chunks decoded together; 8 held 8 x 1500² attention scores per head


@dataclass(frozen=True)
class Transcript:
    text: str
    decoded_chunks: int  # 0 when the voice gate skipped the slot
    dropped_chunks: int  # decoded but dropped (no speech, low confidence, or a loop)


def clean_text(text: str) -> str:
    text = _SPECIAL.sub("", text)
    text = _REPEAT.sub(r"\1", text)
    return " ".join(text.split())


def _keep(result, settings: WhisperSettings) -> bool:
    # Whisper's own silence rule (high no-speech probability *and* low log probability) is
    # contained in this stricter one: any low-confidence decode, or a looping one, is dropped.
    return (result.avg_logprob >= settings.logprob_threshold
            and result.compression_ratio <= settings.compression_ratio_threshold)


def voiced_chunks(audios: Mapping[str, DecodedAudio], settings: WhisperSettings
                  ) -> list[tuple[str, np.ndarray]]:
    """The 30 s chunks worth decoding: slots under the voice gate and silent half-minutes
    inside speech slots are left out."""
    chunks: list[tuple[str, np.ndarray]] = []
    gate = settings.voice_gate
    frames_per_chunk = CHUNK_SAMPLES // 480
    for slot, audio in audios.items():
        if gate and audio.voiced_seconds < settings.min_voiced_s:
            continue
        for start in range(0, len(audio.samples), CHUNK_SAMPLES):
            f0 = start // 480
            if gate and audio.voice_mask()[f0 : f0 + frames_per_chunk].sum() * 480 < (
                    0.5 * SAMPLE_RATE):
                continue  # a silent half-minute inside a speech slot
            chunks.append((slot, audio.samples[start : start + CHUNK_SAMPLES]))
    return chunks


def transcribe(
    model, audios: Mapping[str, DecodedAudio], settings: WhisperSettings = WhisperSettings()
) -> dict[str, Transcript]:
    """Transcribe each slot with whichever engine ``model`` belongs to (openai-whisper's
    ``Whisper`` or faster-whisper's ``WhisperModel``); same gate, same keep rule."""
    chunks = voiced_chunks(audios, settings)
    decode = (_decode_faster if type(model).__module__.startswith("faster_whisper")
              else _decode_openai)
    texts: dict[str, list[str]] = {slot: [] for slot in audios}
    decoded = dict.fromkeys(audios, 0)
    dropped = dict.fromkeys(audios, 0)
    for slot, results in decode(model, chunks, settings):
        decoded[slot] += 1
        kept = [clean_text(r.text) for r in results if _keep(r, settings)]
        text = " ".join(t for t in kept if t)
        if text:
            texts[slot].append(text)
        else:
            dropped[slot] += 1
    return {
        slot: Transcript(" ".join(texts[slot]), decoded[slot], dropped[slot]) for slot in audios
    }


def _decode_openai(model, chunks: list[tuple[str, np.ndarray]], settings: WhisperSettings
                   ) -> Iterator[tuple[str, list]]:
    """openai-whisper: chunks of all slots decoded together, ``batch_size`` at a time."""
    import torch
    import whisper

    options = whisper.DecodingOptions(
        task="transcribe", language=settings.language, temperature=0.0,
        sample_len=settings.sample_len, without_timestamps=True, fp16=False,
    )
    with torch.inference_mode():
        for i in range(0, len(chunks), settings.batch_size):
            batch = chunks[i : i + settings.batch_size]
            mel = torch.stack([
                whisper.log_mel_spectrogram(
                    whisper.pad_or_trim(torch.from_numpy(np.ascontiguousarray(x))),
                    model.dims.n_mels,
                )
                for _, x in batch
            ])
            for (slot, _), result in zip(batch, whisper.decode(model, mel, options)):
                yield slot, [result]


def _decode_faster(model, chunks: list[tuple[str, np.ndarray]], settings: WhisperSettings
                   ) -> Iterator[tuple[str, list]]:
    """faster-whisper (CTranslate2): one chunk at a time, greedy, no temperature fallback,
    its own VAD off (the gate above already chose the chunks)."""
    for slot, samples in chunks:
        segments, _ = model.transcribe(
            np.ascontiguousarray(samples, dtype=np.float32), language=settings.language,
            task="transcribe", beam_size=1, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, max_new_tokens=settings.sample_len,
            vad_filter=False, log_prob_threshold=None, no_speech_threshold=None,
            compression_ratio_threshold=None,
        )
        yield slot, list(segments)
