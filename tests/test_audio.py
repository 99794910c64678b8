import io

import numpy as np
import pytest
import soundfile as sf

from watchme_pipeline.audio import SAMPLE_RATE, AudioDecodeError, decode, high_band_db
from watchme_pipeline.sample_data import _noise, _speech


def wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16", channels: int = 1) -> bytes:
    data = np.stack([samples] * channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_every_phone_wav_variant_decodes_to_16k_mono(rate, subtype, channels):
    t = np.arange(int(2.0 * rate)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    audio = decode(wav(tone, rate, subtype, channels), "x.wav")
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(len(audio.samples) - 2 * SAMPLE_RATE) <= 2
    assert (audio.source_rate, audio.channels) == (rate, channels)
    # Amplitude survives format, channel averaging and resampling.
    assert 0.45 < np.abs(audio.samples[1000:-1000]).max() < 0.55


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)), "not a readable audio file"),
        (np.random.default_rng(0).bytes(5000), "not a readable audio file"),
    ],
)
def test_bad_files_raise_naming_the_file(data, reason):
    with pytest.raises(AudioDecodeError, match=f"files/d/x.wav: {reason}"):
        decode(data, "files/d/x.wav")


def test_nan_samples_are_refused():
    x = np.zeros(16000, dtype=np.float32)
    x[100] = np.nan
    with pytest.raises(AudioDecodeError, match="1 NaN/Inf samples"):
        decode(wav(x, 16000, "FLOAT"), "n.wav")


def test_long_recordings_are_truncated_to_bound_memory():
    x = np.zeros(16000 * 5, dtype=np.float32)
    audio = decode(wav(x, 16000), "long.wav", max_seconds=2)
    assert audio.truncated and audio.duration_s == pytest.approx(2.0)


def test_silero_vad_separates_speech_from_noise_and_silence():
    rng = np.random.default_rng(1)
    speech, _ = _speech(0, ("espeak-ng", "synthetic"), {}, 30, 16000, rng)
    assert decode(wav(speech, 16000), "s").voiced_seconds > 5
    for kind in range(3):  # pink noise, brown noise, an alarm beeping
        assert decode(wav(_noise(kind, 30, 16000, rng), 16000), "n").voiced_seconds < 0.5
    white = (rng.standard_normal(16000 * 30) * 0.2).astype(np.float32)
    assert decode(wav(white, 16000), "w").voiced_seconds < 0.5
    quiet = (rng.standard_normal(16000 * 30) * 3e-4).astype(np.float32)
    assert decode(wav(quiet, 16000), "q").voiced_seconds == 0


def test_the_high_band_of_speech_noise_and_muffled_sound():
    """1-4 kHz against 80 Hz-1 kHz: white noise has three times the bandwidth up there
    (+5 dB); a tone at 300 Hz has none; speech keeps its consonants whatever its level;
    the same speech low-passed at 800 Hz (through a wall) is far below the rule's -30 dB."""
    rng = np.random.default_rng(2)
    white = rng.standard_normal(SAMPLE_RATE * 5)
    assert high_band_db(white) == pytest.approx(4.9, abs=0.5)
    tone = np.sin(2 * np.pi * 300 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    assert high_band_db(tone) < -60
    speech, _ = _speech(0, ("espeak-ng", "synthetic"), {}, 20, SAMPLE_RATE, rng)
    assert -20 < high_band_db(speech) < 0
    assert high_band_db(speech * 0.01) == pytest.approx(high_band_db(speech), abs=0.01)
    spec = np.fft.rfft(speech)
    spec[800 * len(speech) // SAMPLE_RATE:] *= 0.02
    assert high_band_db(np.fft.irfft(spec, len(speech))) < -35
    assert high_band_db(np.zeros(SAMPLE_RATE)) == -np.inf
    assert high_band_db(np.zeros(10)) == -np.inf
