"""Who is speaking, turn by turn: a slot's speech split at short pauses into turns (one voice
each), and each turn's voice as a 256-dimension embedding by resemblyzer's GE2E speaker
encoder (its weights ship inside its PyPI wheel: nothing is downloaded).

The pipeline's VAD segments (2 s pauses, what Whisper decodes) often hold several speakers;
the same Silero VAD with 150 ms pauses, run inside them, gives one voice per turn (make
speaker-probe, docs/accuracy.md). Each turn is embedded whole: the encoder's 1.6 s windows over
it, averaged.
"""

from __future__ import annotations

import base64
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, VadSettings, rms_dbfs, speech_segments

EMBEDDING_SIZE = 256
WINDOW_FRAMES = 160  # the encoder's window: 160 mel frames of 10 ms (resemblyzer's hparams)
FRAME_SAMPLES = SAMPLE_RATE // 100


@dataclass(frozen=True)
class SpeakerSettings:
    """How turns are found and embedded (all of it changes the embeddings)."""

    # A pause this long ends a turn: a soft reply is a turn of its own (make speaker-probe).
    turn_silence_ms: int = 150
    turn_pad_ms: int = 50
    min_turn_s: float = 0.25  # shorter turns carry too little voice to embed
    # The encoder's 1.6 s windows per second of a turn: 0.625, the least that covers every
    # sample (resemblyzer's default 1.3 overlaps them; make speaker-accuracy: the same
    # accuracy, make bench: a quarter less time).
    windows_per_s: float = 0.625
    # Turns embedded per forward pass; not part of the results.
    batch_size: int = field(default=16, repr=False)

    @property
    def turn_vad(self) -> VadSettings:
        return VadSettings(min_silence_ms=self.turn_silence_ms, speech_pad_ms=self.turn_pad_ms)


@dataclass(frozen=True)
class Turn:
    start: int  # samples into the slot
    end: int
    level_db: float  # RMS, dBFS: the wearer is the nearest voice, so usually the loudest
    embedding: np.ndarray = field(repr=False)  # unit length, float32

    def stored(self) -> dict[str, Any]:
        """As the speaker_turns table keeps it: times in seconds, the embedding as float16."""
        return {"start_s": round(self.start / SAMPLE_RATE, 3),
                "end_s": round(self.end / SAMPLE_RATE, 3),
                "level_db": round(self.level_db, 2), "embedding": pack(self.embedding)}


def pack(embedding: np.ndarray) -> str:
    return base64.b64encode(np.asarray(embedding, np.float16).tobytes()).decode("ascii")


def unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.float16).astype(np.float32)


def wheel_weights() -> Path:
    """resemblyzer's pretrained encoder, inside its installed package (not imported here)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("resemblyzer is not installed (make install installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def load_encoder(source: str) -> Any:
    """resemblyzer's VoiceEncoder with the weights at ``source`` (a ``.pt`` state dict)."""
    from resemblyzer import VoiceEncoder

    encoder = VoiceEncoder("cpu", verbose=False, weights_fpath=source).eval()
    # librosa's first mel spectrogram takes a second (its lazy imports): paid here, with
    # the loading, not by the first slot.
    mel_windows(np.full(SAMPLE_RATE, 1e-3, np.float32), SpeakerSettings().windows_per_s)
    return encoder


def turn_spans(audio: DecodedAudio, settings: SpeakerSettings = SpeakerSettings()
               ) -> list[tuple[int, int]]:
    """The slot's turns: the VAD's segments split again at short pauses."""
    vad = settings.turn_vad
    spans = []
    for start, end in audio.speech():
        for s, e in speech_segments(audio.samples[start:end], vad):
            if e - s >= settings.min_turn_s * SAMPLE_RATE:
                spans.append((start + s, start + e))
    return spans


def mel_windows(piece: np.ndarray, windows_per_s: float) -> np.ndarray:
    """The encoder's input for one turn: its mel spectrogram (resemblyzer's own) in 1.6 s
    windows, (windows, 160, 40). Peak-normalized first: the encoder's mel is in power, not
    log, so a soft turn would otherwise look like another voice."""
    from resemblyzer.audio import wav_to_mel_spectrogram
    from resemblyzer.voice_encoder import VoiceEncoder

    piece = piece / max(float(np.abs(piece).max()), 1e-6) * 0.5
    wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(piece), windows_per_s, 0.75)
    if wav_slices[-1].stop >= len(piece):
        piece = np.pad(piece, (0, wav_slices[-1].stop - len(piece)))
    mel = wav_to_mel_spectrogram(piece.astype(np.float32))
    return np.stack([mel[s] for s in mel_slices])


def embed_spans(encoder: Any, samples: np.ndarray, spans: list[tuple[int, int]],
                settings: SpeakerSettings = SpeakerSettings()) -> np.ndarray:
    """One unit embedding per span, (spans, 256): each the mean of its windows' embeddings,
    the windows of ``batch_size`` spans through the encoder at once."""
    import torch

    out = np.zeros((len(spans), EMBEDDING_SIZE), np.float32)
    for i in range(0, len(spans), settings.batch_size):
        group = [mel_windows(samples[s:e], settings.windows_per_s)
                 for s, e in spans[i:i + settings.batch_size]]
        with torch.inference_mode():
            windows = encoder(torch.from_numpy(np.concatenate(group))).numpy()
        at = 0
        for j, mels in enumerate(group):
            mean = windows[at:at + len(mels)].mean(axis=0)
            out[i + j] = mean / max(float(np.linalg.norm(mean)), 1e-9)
            at += len(mels)
    return out


def find_turns(encoder: Any, audio: DecodedAudio, settings: SpeakerSettings = SpeakerSettings()
               ) -> list[Turn]:
    """The slot's turns with their levels and voices."""
    spans = turn_spans(audio, settings)
    embeddings = embed_spans(encoder, audio.samples, spans, settings)
    return [Turn(s, e, rms_dbfs(audio.samples[s:e]), emb)
            for (s, e), emb in zip(spans, embeddings)]
