"""Speech to text with Whisper on the speech the VAD found, kept by Whisper's own rules.

Where speech is comes from Silero VAD (``audio.speech_segments``); a segment without the
1-4 kHz band that speech is understood by (a TV through a wall) is left out, and the rest
are packed into windows of up to 30 s cut at pauses (``audio.speech_windows``), so a word is
never cut at a fixed seam and silence costs no model time. What is kept follows Whisper's
``transcribe``: a window is silence when its no-speech probability is high *and* its
average log probability low; a low-confidence or looping decode is decoded again at the
next temperature rather than dropped; what still loops after the last temperature
(compression ratio above 2.4) is dropped, and so is what is still unsure there (our one rule
beyond Whisper's: it is what sampling makes of non-speech); repeats are cleaned. The token
bound is Whisper's own (224 new tokens). Beam 5 at temperature 0; a decode that ends before
its window does is continued from its last timestamp (faster-whisper on every window,
openai-whisper on long ones: ``timestamps_from_s``; ``make eval``, docs/accuracy.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, high_band_db, speech_windows

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window
_MEL_HOP = 160  # samples per mel frame (whisper.audio.HOP_LENGTH)
_SPECIAL = re.compile(r"<\|[^|]*\|>")
# One phrase repeated 4+ times in a row is a decoding loop (the old fleet saw 146 repeats).
_REPEAT = re.compile(r"(.{2,40}?)(?:\s*\1){3,}", re.DOTALL)


@dataclass(frozen=True)
class WhisperSettings:
    language: str | None = "ja"  # None: detected once per slot on its speech
    logprob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    compression_ratio_threshold: float = 2.4
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    sample_len: int = 224  # Whisper's own bound: half its 448-token context
    # Beam search at temperature 0 on both engines; the fallback temperatures sample. make
    # eval, Japanese kana CER: faster-whisper 4.3 vs 5.3 % greedy for ~45 % more model time;
    # openai-whisper 4.0 vs 6.0 % for 2.9x its time (3.4 -> 9.7 s per audio minute).
    beam_size: int = 5
    # Windows decoded together by openai-whisper when greedy (beam_size 1); its beam search
    # fails on a batch (tensor sizes 15 vs 3 in attention), so with a beam it takes one.
    batch_size: int = field(default=4, repr=False)
    # Sampling at temperature > 0 is seeded per window: the same audio gives the same text
    # (a recomputed slot does not change for nothing).
    seed: int = 0
    # A speech segment whose 1-4 kHz band is this far below its low band is muffled: a TV or
    # voices through a wall. Whisper cannot read it and loops on it (make eval: the TV slot
    # took 16 s of model time on faster-whisper, 96 s on openai-whisper, for no text), so it
    # is not decoded. Speech segments of both corpora are -5 to -16 dB, the TV -43.
    min_high_band_db: float = -30.0
    # openai-whisper, without timestamps, skips or ends early on a long window of dense
    # speech (make eval: 「犬の散歩のついでに」 gone from 40 s of continuous speech); with
    # them, and decoding on from the last one, nothing is lost (continuous 5.5 -> 3.4 % kana
    # CER). On a window of a few utterances the two differ by a word in 3 of 17 (2 for the
    # form without), so a window longer than this (seconds) is decoded with timestamps.
    timestamps_from_s: float = 15.0


@dataclass(frozen=True)
class Line:
    """A piece of the transcript and where in the slot it was said (samples): one Whisper
    segment (faster-whisper's timestamps), or a window decoded without them."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    windows: int  # windows of speech decoded (0: the VAD found no speech)
    dropped: int  # decoded windows judged silence, or still looping after the fallback
    language: str | None = None
    muffled: int = 0  # speech segments not decoded: sound through a wall (min_high_band_db)
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Window:
    slot: str
    audio: np.ndarray  # the window's speech segments, concatenated
    language: str | None
    spans: tuple[tuple[int, int], ...] = ()  # where in the slot its segments are

    def slot_sample(self, seconds: float) -> int:
        """A time in the window's audio as a sample of the slot."""
        at = int(seconds * SAMPLE_RATE)
        for start, end in self.spans:
            if at <= end - start:
                return start + at
            at -= end - start
        return self.spans[-1][1]


def clean_text(text: str) -> str:
    text = _SPECIAL.sub("", text)
    text = _REPEAT.sub(r"\1", text)
    return " ".join(text.split())


def is_silence(result, s: WhisperSettings) -> bool:
    """Whisper's no-speech rule, a high no-speech probability and a low log probability, and
    the same probability with a loop: a looping decode is confident, so its log probability
    says nothing (make eval: a TV through a wall loops 「あなたは知りません。」 at -0.21 with
    no-speech 0.66-0.70, where the soft and noisy speech windows probed are at most 0.17),
    and sending it down openai-whisper's temperature fallback cost its speech 23-32 % more
    model time (make eval)."""
    return result.no_speech_prob > s.no_speech_threshold and (
        result.avg_logprob < s.logprob_threshold
        or result.compression_ratio > s.compression_ratio_threshold)


def needs_fallback(result, s: WhisperSettings) -> bool:
    """Whisper's temperature-fallback rule: a loop or a low-confidence decode, unless silence."""
    return not is_silence(result, s) and (
        result.compression_ratio > s.compression_ratio_threshold
        or result.avg_logprob < s.logprob_threshold)


def keep(result, s: WhisperSettings) -> bool:
    """After the fallback: silence is dropped, and so is a decode that still fails at the last
    temperature, by looping (Whisper's own rule) or by low confidence. Whisper's
    ``transcribe`` keeps the latter; on non-speech that the VAD lets through (a TV through a
    wall) it is sampled nonsense (make eval: average log probability -2.7 where speech in
    noise is above -0.5), and speech is never only there."""
    exhausted = (result.temperature or 0.0) >= s.temperatures[-1] and (
        result.avg_logprob < s.logprob_threshold)
    return not is_silence(result, s) and not exhausted and (
        result.compression_ratio <= s.compression_ratio_threshold)


def slot_windows(audio: DecodedAudio, s: WhisperSettings) -> list[np.ndarray]:
    """The slot's speech (the segments the shared decode found once, with ``VadSettings``) as
    Whisper windows, each the concatenation of its segments; muffled segments left out."""
    return [x for x, _ in _windows(audio, s)[0]]


def _windows(audio: DecodedAudio, s: WhisperSettings
             ) -> tuple[list[tuple[np.ndarray, list[tuple[int, int]]]], int]:
    heard = [(a, b) for a, b in audio.speech()
             if high_band_db(audio.samples[a:b]) >= s.min_high_band_db]
    return ([(np.concatenate([audio.samples[a:b] for a, b in window]), window)
             for window in speech_windows(heard, WINDOW_SAMPLES)],
            len(audio.speech()) - len(heard))


def transcribe(
    model, audios: Mapping[str, DecodedAudio], settings: WhisperSettings = WhisperSettings()
) -> dict[str, Transcript]:
    """Transcribe each slot with whichever engine ``model`` belongs to (openai-whisper's
    ``Whisper`` or faster-whisper's ``WhisperModel``): same windows, same keep rules."""
    faster = type(model).__module__.startswith("faster_whisper")
    windows: list[Window] = []
    languages: dict[str, str | None] = {}
    muffled: dict[str, int] = {}
    for slot, audio in audios.items():
        pieces, muffled[slot] = _windows(audio, settings)
        language = settings.language
        if pieces and language is None:  # detected once per slot, on its first window
            language = (_detect_faster if faster else _detect_openai)(model, pieces[0][0])
        languages[slot] = language if pieces else settings.language
        windows += [Window(slot, x, language, tuple(spans)) for x, spans in pieces]
    texts: dict[str, list[str]] = {slot: [] for slot in audios}
    lines: dict[str, list[Line]] = {slot: [] for slot in audios}
    decoded = dict.fromkeys(audios, 0)
    dropped = dict.fromkeys(audios, 0)
    decode = _decode_faster if faster else _decode_openai
    for window, results in decode(model, windows, settings):
        decoded[window.slot] += 1
        kept = [(r, clean_text(r.text)) for r in results if keep(r, settings)]
        for r, t in kept:
            if t and getattr(r, "start", None) is not None:  # a timed segment
                lines[window.slot].append(Line(window.slot_sample(r.start),
                                               window.slot_sample(r.end), t))
            elif t:
                lines[window.slot].append(Line(window.spans[0][0], window.spans[-1][1], t))
        text = " ".join(t for _, t in kept if t)
        if text:
            texts[window.slot].append(text)
        else:
            dropped[window.slot] += 1
    return {slot: Transcript(" ".join(texts[slot]), decoded[slot], dropped[slot],
                             languages[slot], muffled[slot], tuple(lines[slot]))
            for slot in audios}


def _detect_faster(model, audio: np.ndarray) -> str:
    language, _, _ = model.detect_language(np.ascontiguousarray(audio, dtype=np.float32))
    return language


def _decode_faster(model, windows: list[Window], settings: WhisperSettings
                   ) -> Iterator[tuple[Window, list]]:
    """faster-whisper (CTranslate2): one window at a time, its own implementation of the same
    fallback, with Whisper's no-speech rule only (a TV loop goes down its ladder: make eval
    measured deciding temperature 0 first, to apply the loop rule, at 9 % less time on the TV
    slot and 6-14 % more on speech, so it is not done); its VAD off (the windows are speech).

    With timestamps: a decode that ends before its window does (the tail of a packed window,
    a second sentence after the first) is continued from its last timestamp. Without them
    the decoder's early end of text dropped the rest of the window (make eval: 4 of 21
    Japanese speech slots lost a sentence where windows meet; with timestamps none)."""
    import ctranslate2

    for w in windows:
        ctranslate2.set_random_seed(settings.seed)
        segments, _ = model.transcribe(
            np.ascontiguousarray(w.audio, dtype=np.float32), language=w.language,
            task="transcribe", beam_size=settings.beam_size, best_of=1,
            temperature=list(settings.temperatures),
            without_timestamps=False, condition_on_previous_text=False,
            max_new_tokens=settings.sample_len, vad_filter=False,
            log_prob_threshold=settings.logprob_threshold,
            no_speech_threshold=settings.no_speech_threshold,
            compression_ratio_threshold=settings.compression_ratio_threshold,
        )
        yield w, list(segments)


# The openai-whisper engine's decode (its own module); here for callers of this one.
from watchme_pipeline.models.whisper_openai import (  # noqa: E402
    _consumed,
    _decode_openai,
    _detect_openai,
)

__all__ = ["Line", "WhisperSettings", "Transcript", "Window", "_consumed", "_decode_openai",
           "_detect_openai", "is_silence", "keep", "needs_fallback", "slot_windows",
           "transcribe"]
