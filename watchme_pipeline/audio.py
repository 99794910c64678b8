"""Audio decoding and where speech is: soundfile, scipy, and Silero VAD.

Every stage consumes the same ``DecodedAudio``: 16 kHz mono float32, decoded once per slot,
with its speech segments found once (Whisper decodes them, the emotion model listens to them).
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly, welch

SAMPLE_RATE = 16_000
# A recorder uploads about a minute; anything longer than this is truncated (memory stays bounded).
DEFAULT_MAX_SECONDS = 600.0


class AudioDecodeError(ValueError):
    """A recording that cannot be used; the message names the file and the reason."""


@dataclass
class DecodedAudio:
    samples: np.ndarray  # float32, mono, 16 kHz
    source_rate: int
    channels: int
    source_format: str
    truncated: bool = False
    # Speech segments (start, end samples) by the VAD, found once and shared by the stages.
    segments: list[tuple[int, int]] | None = field(default=None, repr=False)
    # Who spoke where (speech_segments): the wearer's and others' turns, in samples; None
    # where the device has no wearer profile (speech not attributed).
    speakers: dict[str, list[tuple[int, int]]] | None = field(default=None, repr=False)

    def speaker_seconds(self, speaker: str) -> float:
        return sum(e - s for s, e in (self.speakers or {}).get(speaker, [])) / SAMPLE_RATE

    def only(self, speaker: str) -> DecodedAudio:
        """The audio with one speaker's turns as its speech (itself where speech is not
        attributed: all of it is heard, as before)."""
        if self.speakers is None:
            return self
        return dataclasses.replace(self, segments=list(self.speakers.get(speaker, [])))

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def speech(self) -> list[tuple[int, int]]:
        if self.segments is None:
            self.segments = speech_segments(self.samples)
        return self.segments

    @property
    def voiced_seconds(self) -> float:
        return sum(e - s for s, e in self.speech()) / SAMPLE_RATE

    def voiced_samples(self) -> np.ndarray:
        """The speech segments only, concatenated (what the emotion model listens to)."""
        parts = [self.samples[s:e] for s, e in self.speech()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def decode(data: bytes, name: str, max_seconds: float = DEFAULT_MAX_SECONDS) -> DecodedAudio:
    """Decode WAV (any PCM/float variant libsndfile reads) to 16 kHz mono float32."""
    if not data:
        raise AudioDecodeError(f"{name}: empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, fmt = f.samplerate, f.channels, f"{f.format}/{f.subtype}"
            if rate <= 0 or channels <= 0:
                raise AudioDecodeError(f"{name}: invalid header ({rate} Hz, {channels} channels)")
            limit = int(max_seconds * rate)
            frames = f.read(frames=min(f.frames, limit) if f.frames > 0 else limit,
                            dtype="float32", always_2d=True)
            truncated = f.frames > limit
    except AudioDecodeError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        # libsndfile names the in-memory buffer ("<_io.BytesIO object at 0x…>"): drop that.
        reason = re.sub(r"Error opening <[^>]*>: ", "", str(exc))
        raise AudioDecodeError(f"{name}: not a readable audio file ({reason})") from None
    if frames.shape[0] == 0:
        raise AudioDecodeError(f"{name}: no audio samples ({fmt}, {rate} Hz)")
    if not np.isfinite(frames).all():
        bad = int((~np.isfinite(frames)).sum())
        raise AudioDecodeError(f"{name}: {bad} NaN/Inf samples")
    mono = frames.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        ratio = Fraction(SAMPLE_RATE, rate).limit_denominator(1000)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    np.clip(mono, -1.0, 1.0, out=mono)
    return DecodedAudio(mono, rate, channels, fmt, truncated)


@dataclass(frozen=True)
class VadSettings:
    """Silero VAD (the ONNX model in faster-whisper's wheel) and how its segments become
    Whisper windows. Defaults are faster-whisper's own ``VadOptions`` (what its
    ``transcribe(vad_filter=True)`` uses), with segments bounded to one Whisper window."""

    threshold: float = 0.5
    min_silence_ms: int = 2000  # a pause this long ends a segment
    speech_pad_ms: int = 400  # kept on each side of a segment
    max_window_s: float = 30.0  # Whisper's window; longer speech is cut at its pauses
    # Pre-gate: a slot whose loudest sample is below this is digital silence; the VAD is not
    # run on it (make eval: it fired on no speech case, down to soft speech at -30 dB).
    silence_peak_dbfs: float = -70.0


def speech_segments(samples: np.ndarray, settings: VadSettings = VadSettings()
                    ) -> list[tuple[int, int]]:
    """Where speech is, as (start, end) sample indices, by Silero VAD through
    ``faster_whisper.vad``; each segment at most ``max_window_s`` (Silero cuts a longer
    stretch at its last pause of 100 ms or more)."""
    if len(samples) == 0 or float(np.abs(samples).max()) < 10 ** (settings.silence_peak_dbfs
                                                                  / 20):
        return []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=settings.threshold,
                         min_silence_duration_ms=settings.min_silence_ms,
                         speech_pad_ms=settings.speech_pad_ms,
                         max_speech_duration_s=settings.max_window_s)
    found = get_speech_timestamps(np.ascontiguousarray(samples, dtype=np.float32), options,
                                  sampling_rate=SAMPLE_RATE)
    return [(int(s["start"]), int(s["end"])) for s in found if s["end"] > s["start"]]


def speech_windows(segments: list[tuple[int, int]], max_samples: int = 30 * SAMPLE_RATE
                   ) -> list[list[tuple[int, int]]]:
    """Speech segments packed, in order, into windows whose speech adds up to at most
    ``max_samples``: a window ends between two segments (at a pause), never on a fixed grid.
    The window's audio is its segments concatenated (as faster-whisper's VAD filter does),
    so long silences cost no model time. A segment longer than a window (the VAD bounds them,
    so only from other callers) is split into equal parts."""
    windows: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    length = 0
    for start, end in segments:
        parts = -(-(end - start) // max_samples)
        step = -(-(end - start) // parts)
        for s in range(start, end, step):
            e = min(s + step, end)
            if current and length + (e - s) > max_samples:
                windows.append(current)
                current, length = [], 0
            current.append((s, e))
            length += e - s
    if current:
        windows.append(current)
    return windows


def high_band_db(samples: np.ndarray) -> float:
    """The power of the 1-4 kHz band (consonants, the second formant: what makes speech
    intelligible) relative to 80 Hz-1 kHz, in dB. Speech near the recorder, in quiet or in
    noise, soft or loud, is -5 to -16 dB (make eval, every speech segment of both corpora);
    sound through a wall, whose highs the wall takes, is below -40."""
    if len(samples) < 64:
        return -math.inf
    f, p = welch(samples.astype(np.float64), SAMPLE_RATE, nperseg=min(1024, len(samples)))
    low = float(p[(f >= 80) & (f < 1000)].sum())
    high = float(p[(f >= 1000) & (f < 4000)].sum())
    if high <= 0:
        return -math.inf
    return 10 * math.log10(high / low) if low > 0 else math.inf


def rms_dbfs(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf
