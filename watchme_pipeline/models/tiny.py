"""Tiny random-weight models with the real architectures, for tests and offline demos.

They are built once into a cache folder and then loaded through exactly the same code as the
real checkpoints (``whisper.load_model(path)``, ``from_pretrained(path)``): only the weights
differ. Labels are real: the 527 AudioSet classes and SUPERB-ER's neu/hap/ang/sad.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict
from functools import cache
from pathlib import Path

EMOTION_LABELS = ("neu", "hap", "ang", "sad")
_LABELS_CSV = Path(__file__).with_name("audioset_labels.csv")


@cache
def audioset_labels() -> tuple[str, ...]:
    with _LABELS_CSV.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = tuple(r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"])))
    assert len(labels) == 527, len(labels)
    return labels


def _atomic_dir(target: Path, build) -> Path:
    """Build into a temp sibling and rename, so a half-written model is never loaded."""
    if target.exists():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    build(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_whisper(cache_dir: Path) -> Path:
    """A 1-layer, 64-wide multilingual Whisper checkpoint in openai-whisper's format."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    def build(tmp: Path) -> None:
        torch.manual_seed(0)
        dims = ModelDimensions(
            n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
            n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1,
        )
        model = Whisper(dims)
        torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, tmp / "model.pt")

    return _atomic_dir(cache_dir / "tiny-whisper", build) / "model.pt"


def build_tiny_ast(cache_dir: Path) -> Path:
    """ASTForAudioClassification with the 527 AudioSet labels and AST's own feature extractor."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    def build(tmp: Path) -> None:
        torch.manual_seed(0)
        labels = audioset_labels()
        config = ASTConfig(
            hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
            num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        ASTForAudioClassification(config).save_pretrained(tmp)
        ASTFeatureExtractor().save_pretrained(tmp)

    return _atomic_dir(cache_dir / "tiny-ast", build)


def build_tiny_emotion(cache_dir: Path) -> Path:
    """Wav2Vec2ForSequenceClassification with SUPERB-ER's four labels."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    def build(tmp: Path) -> None:
        torch.manual_seed(0)
        config = Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            conv_dim=(32,) * 7, classifier_proj_size=32, num_labels=len(EMOTION_LABELS),
            id2label=dict(enumerate(EMOTION_LABELS)),
            label2id={label: i for i, label in enumerate(EMOTION_LABELS)},
        )
        Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp)
        Wav2Vec2FeatureExtractor(
            sampling_rate=16000, do_normalize=True, return_attention_mask=True
        ).save_pretrained(tmp)

    return _atomic_dir(cache_dir / "tiny-emotion", build)


TINY_BUILDERS = {
    "whisper": build_tiny_whisper,
    "events": build_tiny_ast,
    "emotion": build_tiny_emotion,
}
