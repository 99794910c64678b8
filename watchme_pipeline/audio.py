"""Audio decoding and voice-activity detection, plain numpy/scipy/soundfile.

Every stage consumes the same ``DecodedAudio``: 16 kHz mono float32, decoded once per slot.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
FRAME = 480  # 30 ms at 16 kHz
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
    voiced: np.ndarray | None = field(default=None, repr=False)  # per 30 ms frame

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def voice_mask(self) -> np.ndarray:
        if self.voiced is None:
            self.voiced = voiced_frames(self.samples)
        return self.voiced

    @property
    def voiced_seconds(self) -> float:
        return float(self.voice_mask().sum()) * FRAME / SAMPLE_RATE

    def voiced_samples(self) -> np.ndarray:
        """The voiced frames only, concatenated (what the emotion model listens to)."""
        mask = self.voice_mask()
        n = len(mask) * FRAME
        frames = self.samples[:n].reshape(-1, FRAME)
        return frames[mask].reshape(-1)


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


def voiced_frames(samples: np.ndarray) -> np.ndarray:
    """Per 30 ms frame: loud, with a genuine pitch peak at 80-400 Hz, and few zero crossings.

    Silence is quiet; white noise and high tones cross zero too often; low-frequency noise
    (traffic, wind) has an autocorrelation that only decays, with no peak at a pitch lag.
    Speech is loud, pitched and low in zero crossings. FFT autocorrelation keeps this cheap
    (about 20 ms per audio minute).
    """
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = samples[: n * FRAME].reshape(n, FRAME).astype(np.float32)
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = rms > 10 ** (-42 / 20)  # -42 dBFS
    zcr = (np.diff(np.signbit(frames), axis=1) != 0).mean(axis=1)
    spec = np.fft.rfft(frames, n=2 * FRAME, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :FRAME]
    ac = ac / (ac[:, :1] + 1e-12)
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 80
    peak_lag = lo + ac[:, lo:hi].argmax(axis=1)
    peak = ac[np.arange(n), peak_lag]
    lags = np.arange(hi)[None, :]
    # The deepest dip between lag 1 and the peak: a real pitch peak rises out of a valley.
    valley = np.where((lags >= 1) & (lags < peak_lag[:, None]), ac[:, :hi], np.inf).min(axis=1)
    pitched = (peak > 0.45) & (peak - valley > 0.3) & (peak_lag > lo) & (peak_lag < hi - 1)
    voiced = loud & pitched & (zcr < 0.15)
    # Smooth: a frame is voiced if most of its 5-frame neighbourhood is (drops clicks).
    kernel = np.ones(5) / 5
    return np.convolve(voiced.astype(float), kernel, mode="same") >= 0.5


def rms_dbfs(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf
