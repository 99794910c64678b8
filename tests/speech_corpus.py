"""An English speech corpus of our own (espeak-ng) composed into 60 s slots.

Utterances are spoken at two rates; each has its reference beside it. (Japanese is spoken by a
neural voice in ``japanese_corpus``: espeak-ng's Japanese is too rough for Whisper to hear.)
Cases put them where a wearable hears them: across Whisper's 30 s seam, soft,
in pink, brown and babble-like noise, as 40 s of continuous speech, far apart; quiet slots
hold no speech at all. Used by the real-weight tests and by ``make eval``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SR = 16_000
SLOT_S = 60
SPEECH_DBFS = -20.0  # normal speech level (RMS over the voiced part)

# (id, spoken text, reference). Lengths run from about 3 s to over 20 s at the slow rate.
ENGLISH = [
    ("en01", "Good morning, everyone. I hope you all slept well last night."),
    ("en02", "Could you pass me the salt and the pepper, please? Thank you."),
    ("en03", "I think it is going to rain this afternoon, so bring an umbrella."),
    ("en04", "We went to the market this morning and bought some fresh vegetables and bread."),
    ("en05", "The train was late again, and I had to wait on the platform for a long time."),
    ("en06", "My sister called me last night to tell me about her new job at the hospital."),
    ("en07", "Let us meet at the coffee shop near the station after work."),
    ("en08", "The children were playing in the park while their parents talked on the bench."),
    ("en09", "I forgot my keys at home, so I had to ask my neighbour to let me in. It was a "
             "little embarrassing, but she was very kind about it and even offered me tea."),
    ("en10", "When I was young, my grandmother used to tell me stories about the village where "
             "she grew up, the river behind her house, and the long walk to school every "
             "morning through the fields."),
    ("en11", "Please remember to turn off the lights and lock the door before you leave."),
    ("en12", "The doctor said I should sleep more, drink more water and walk every day."),
    ("en13", "Yesterday the weather was beautiful, so we took the dog for a long walk along "
             "the river and had lunch in a small restaurant with a view of the mountains. "
             "Everyone was tired but happy when we came home in the evening."),
    ("en14", "Thank you very much for your help today. I really could not have done it "
             "without you."),
]
RATES = {"en": (140, 175)}  # espeak-ng words per minute: slow, normal


@dataclass(frozen=True)
class Utterance:
    uid: str
    lang: str
    rate: int
    reference: str
    audio: np.ndarray = field(repr=False)  # 16 kHz float32 at the normal level

    @property
    def seconds(self) -> float:
        return len(self.audio) / SR


@dataclass(frozen=True)
class Case:
    name: str
    group: str  # seam, soft, noise, continuous, far-apart, clean, quiet
    lang: str  # en, ja; "" for quiet slots
    references: tuple[str, ...]  # one per utterance in the slot (empty: no speech)
    audio: np.ndarray = field(repr=False)

    @property
    def reference(self) -> str:
        return " ".join(self.references)

    def wav_bytes(self) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, self.audio, SR, format="WAV", subtype="PCM_16")
        return buf.getvalue()


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, lang: str, rate: int) -> np.ndarray:
    """espeak-ng to 16 kHz float32, trimmed of its silent ends, at ``SPEECH_DBFS``."""
    wav = subprocess.run(["espeak-ng", "-v", lang, "-s", str(rate), "--stdout", text],
                         check=True, capture_output=True).stdout
    voice, rate_in = sf.read(io.BytesIO(wav), dtype="float32")
    voice = resample_poly(voice, SR, rate_in).astype(np.float32)
    loud = np.flatnonzero(np.abs(voice) > 1e-3)
    voice = voice[loud[0] : loud[-1] + 1]
    return set_level(voice, SPEECH_DBFS)


def rms_db(x: np.ndarray) -> float:
    active = x[np.abs(x) > 1e-4] if np.any(np.abs(x) > 1e-4) else x
    return 20 * np.log10(np.sqrt(np.mean(active.astype(np.float64) ** 2)) + 1e-12)


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * 10 ** ((dbfs - rms_db(x)) / 20)).astype(np.float32)


@cache
def utterances() -> tuple[Utterance, ...]:
    out = []
    for uid, text in ENGLISH:
        for rate in RATES["en"]:
            out.append(Utterance(uid, "en", rate, text, speak(text, "en", rate)))
    return tuple(out)


def _pick(lang: str, rate_index: int, *, min_s: float = 0, max_s: float = 99,
          skip: int = 0) -> Utterance:
    pool = [u for u in utterances() if u.lang == lang and u.rate == RATES[lang][rate_index]
            and min_s <= u.seconds <= max_s]
    return pool[skip % len(pool)]


def _slot(rng: np.random.Generator, floor_dbfs: float = -70.0) -> np.ndarray:
    """An empty slot with a recorder's faint noise floor."""
    return set_level(rng.standard_normal(SLOT_S * SR).astype(np.float32), floor_dbfs)


def _place(slot: np.ndarray, u: np.ndarray, at_s: float, gain_db: float = 0.0) -> None:
    i = int(at_s * SR)
    slot[i : i + len(u)] += u[: len(slot) - i] * 10 ** (gain_db / 20)


def colored_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SR)
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.arange(1, len(spec) + 1)
    if kind == "pink":
        spec /= np.sqrt(f)
    elif kind == "brown":
        spec /= f
    elif kind == "rumble":  # traffic: brown noise below ~200 Hz, swelling as cars pass
        spec /= f
        spec[int(200 * seconds) :] = 0
    x = np.fft.irfft(spec, n)
    if kind == "rumble":
        x *= 1 + 0.8 * np.sin(2 * np.pi * np.arange(n) / SR / 7.0)
    return set_level(x.astype(np.float32), -30.0)


def babble(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Babble-like noise: six talkers at once, time-reversed (speech-shaped, no words)."""
    n = int(seconds * SR)
    out = np.zeros(n, dtype=np.float32)
    voices = [u.audio for u in utterances()]
    for _ in range(6):
        pos = -int(rng.uniform(0, 5) * SR)
        while pos < n:
            v = voices[rng.integers(len(voices))][::-1]
            a, b = max(pos, 0), min(pos + len(v), n)
            if b > a:
                out[a:b] += v[a - pos : b - pos]
            pos += len(v) + int(rng.uniform(0.1, 0.6) * SR)
    return set_level(out, -30.0)


def music(seconds: float) -> np.ndarray:
    """Music-like: chords of harmonic tones with note envelopes."""
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6),
              (196.0, 246.9, 293.7)]
    for k, chord in enumerate(chords * int(seconds / 2 / len(chords) + 1)):
        start = k * 2.0
        env = np.clip((t - start) * 20, 0, 1) * np.exp(-np.clip(t - start, 0, None) * 1.5)
        env *= t >= start
        for f0 in chord:
            out += env * sum(np.sin(2 * np.pi * f0 * h * t) / h**2 for h in (1, 2, 3))
    return set_level(out.astype(np.float32), -25.0)


def _with_noise(speech_slot: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    # SNR against the speech's level; the noise runs through the whole slot.
    return (speech_slot + set_level(noise, SPEECH_DBFS - snr_db)).astype(np.float32)


def build_cases(quick: bool = False) -> list[Case]:
    """Every case, or with ``quick`` one per kind (what `make test` runs)."""
    rng = np.random.default_rng(20261127)
    cases: list[Case] = []

    def add(name, group, lang, utts_at, base=None, gain_db=0.0):
        slot = _slot(rng) if base is None else base
        for u, at in utts_at:
            _place(slot, u.audio, at, gain_db)
        np.clip(slot, -1, 1, out=slot)
        cases.append(Case(name, group, lang, tuple(u.reference for u, _ in utts_at), slot))

    for lang in ("en",):
        for r in (0, 1):  # an utterance across the 30 s mark, at both rates
            u = _pick(lang, r, min_s=6, skip=r)
            add(f"{lang}-seam-r{r}", "seam", lang, [(u, 30 - u.seconds / 2)])
            if quick:
                break
        for gain in (-20, -30):
            u = _pick(lang, 1, min_s=3, skip=2 + gain // 10)
            add(f"{lang}-soft{gain}", "soft", lang, [(u, 12)], gain_db=gain)
            if quick:
                break
        snrs = (5,) if quick else (10, 5, 0)
        for k, kind in enumerate(("pink", "brown", "babble")):
            if quick and kind != "pink":  # babble costs a minute a slot in fallbacks
                continue
            for snr in snrs:
                u = _pick(lang, k % 2, min_s=3, skip=3 + k + snr)
                slot = _slot(rng)
                _place(slot, u.audio, 15)
                noise = babble(SLOT_S, rng) if kind == "babble" else colored_noise(
                    kind, SLOT_S, rng)
                slot = _with_noise(slot, noise, snr)
                np.clip(slot, -1, 1, out=slot)
                cases.append(Case(f"{lang}-{kind}-snr{snr}", "noise", lang, (u.reference,),
                                  slot))
        # 40 s of continuous speech: utterances back to back, short breaths between them.
        run, at, k = [], 5.0, 0
        while at < 45:
            u = _pick(lang, k % 2, skip=k)
            if at + u.seconds > 57:
                break
            run.append((u, at))
            at += u.seconds + 0.3
            k += 1
        add(f"{lang}-continuous", "continuous", lang, run)
        if not quick:
            a, b = _pick(lang, 0, skip=5), _pick(lang, 1, skip=6)
            add(f"{lang}-far-apart", "far-apart", lang, [(a, 2), (b, 58 - b.seconds)])
        for r in (0, 1):
            for k in range(1 if quick else 3):
                u = _pick(lang, r, skip=7 + 2 * k + r)
                add(f"{lang}-clean-r{r}-{k}", "clean", lang, [(u, 5 + 10 * k)])
    quiet = {
        "silence": np.zeros(SLOT_S * SR, dtype=np.float32),
        "hiss": _slot(rng, -60.0),
        "white": set_level(rng.standard_normal(SLOT_S * SR).astype(np.float32), -30.0),
        "pink": colored_noise("pink", SLOT_S, rng),
        "traffic": colored_noise("rumble", SLOT_S, rng),
        "music": music(SLOT_S),
    }
    for name, audio in quiet.items():
        if quick and name in ("hiss", "white"):
            continue
        cases.append(Case(f"quiet-{name}", "quiet", "", (), np.clip(audio, -1, 1)))
    return cases


def normalize(text: str) -> str:
    """Whisper's own English normalizer (the words compared)."""
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()(text)


def error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus-level WER: edits over reference length."""
    import jiwer

    return float(jiwer.wer([normalize(r) for r in references],
                           [normalize(h) for h in hypotheses]))


def lost(reference: str, hypothesis: str) -> bool:
    """An utterance is lost when under half its words came out."""
    return len(normalize(hypothesis).split()) < 0.5 * len(normalize(reference).split())
