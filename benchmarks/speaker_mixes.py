"""The speaker probe's mixes (benchmarks/speaker_probe.py): slots where Kokoro's Japanese
voices take turns, the truth of who spoke each sample, and noise.

Mixes (written for this probe): each 60 s slot has the wearer and two other voices taking
turns with pauses of 0.3-1.5 s; every other test slot has pink noise at SNR 10 dB. Three
families: "near", the wearer nearest the microphone (each turn +-3 dB, the others 6-18 dB
below: 1-2 m against 20 cm), the targets' mixes; "near, soft wearer", as near with a quarter
of the wearer's turns said 10 dB softer; "equal", the first probe's, where two thirds of the
others' turns are as loud as the wearer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import japanese_corpus as ja  # noqa: E402
from speech_corpus import SR, colored_noise, set_level  # noqa: E402

ENROLL, TEST = range(0, 9), range(9, 18)  # sentence indexes: disjoint
SLOT = 60 * SR
MIXES = ("near", "near, soft wearer", "equal")  # the families, as turn_gain_db says


def mixed_slot(mixes: str, wearer: str, others: list[str], sentences: list[int],
               rng: np.random.Generator, wearer_share: float = 0.6
               ) -> tuple[np.ndarray, np.ndarray]:
    """A 60 s slot of turns: (audio, truth per sample: 0 silence, 1 wearer, 2 other)."""
    audio, truth = np.zeros(SLOT, np.float32), np.zeros(SLOT, np.int8)
    at = int(rng.uniform(0.5, 2.0) * SR)
    k = 0
    while at < SLOT - SR:
        is_wearer = rng.random() < wearer_share
        voice = wearer if is_wearer else others[k % len(others)]
        speech = ja.speak(ja.SENTENCES[sentences[k % len(sentences)]][1], voice, 1.0)
        speech = speech * 10 ** (turn_gain_db(mixes, is_wearer, rng) / 20)
        n = min(len(speech), SLOT - at)
        audio[at:at + n] += speech[:n]
        truth[at:at + n] = 1 if is_wearer else 2
        at += n + int(rng.uniform(0.3, 1.5) * SR)
        k += 1
    return audio, truth


def turn_gain_db(mixes: str, is_wearer: bool, rng: np.random.Generator) -> float:
    """"near": each turn +-3 dB, the others 6-18 dB below the wearer (1-2 m against 20 cm),
    "near, soft wearer": as near, with a quarter of the wearer's turns 10 dB softer;
    "equal": a third of the others' turns 12 dB softer (a bystander further away)."""
    if mixes == "near":
        return rng.uniform(-3, 3) - (0 if is_wearer else rng.uniform(6, 18))
    if mixes == "near, soft wearer":  # a quarter of the wearer's turns said quietly
        soft = is_wearer and rng.random() < 1 / 4
        return rng.uniform(-3, 3) - (10 if soft else 0 if is_wearer else rng.uniform(6, 18))
    return -12.0 if not is_wearer and rng.random() < 1 / 3 else 0.0


def with_noise(audio: np.ndarray, rng: np.random.Generator, snr_db: float = 10.0) -> np.ndarray:
    voiced = audio[np.abs(audio) > 1e-4]
    level = 10 * np.log10(np.mean(voiced ** 2) + 1e-12)
    noise = set_level(colored_noise("pink", SLOT / SR, rng), level - snr_db)
    return (audio + noise[:len(audio)]).astype(np.float32)


def noisy(piece: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = colored_noise(kind, len(piece) / SR + 0.1, rng)[:len(piece)]
    scale = np.sqrt(np.mean(piece ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (piece + noise * scale).astype(np.float32)
