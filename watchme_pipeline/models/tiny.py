"""Tiny random-weight models with the real architectures, for tests and offline demos.

They are built once into a cache folder and then loaded through exactly the same code as the
real checkpoints (``whisper.load_model(path)``, ``from_pretrained(path)``): only the weights
differ. Labels are real: the 527 AudioSet classes and SUPERB-ER's neu/hap/ang/sad.
"""

from __future__ import annotations

import csv
import os
import warnings
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

    def build(tmp: Path) -> None:  # imports here: a cached stand-in loads without them
        import torch
        from whisper.model import ModelDimensions, Whisper

        torch.manual_seed(0)
        dims = ModelDimensions(
            n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
            n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=1,
        )
        model = Whisper(dims)
        torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, tmp / "model.pt")

    return _atomic_dir(cache_dir / "tiny-whisper", build) / "model.pt"


def whisper_tokenizer_json(path: Path) -> Path:
    """Whisper's multilingual tokenizer as a ``tokenizer.json`` (what faster-whisper reads),
    built offline from the tiktoken file openai-whisper ships, special tokens at their ids."""
    import whisper.tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    enc = whisper.tokenizer.get_encoding("multilingual")
    specials = [t for t, _ in sorted(enc._special_tokens.items(), key=lambda kv: kv[1])]
    tiktoken_file = Path(whisper.tokenizer.__file__).parent / "assets" / "multilingual.tiktoken"
    converted = TikTokenConverter(vocab_file=str(tiktoken_file), pattern=enc._pat_str,
                                  extra_special_tokens=specials).converted()
    converted.save(str(path))
    return path


def build_ct2_whisper(target: Path, *, d_model: int, layers: int, heads: int,
                      quantization: str = "int8") -> Path:
    """A random-weight transformers Whisper converted to CTranslate2 (faster-whisper's
    format) with the multilingual tokenizer; ``base`` is d_model=512, layers=6, heads=8."""
    import tempfile

    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    def build(tmp: Path) -> None:
        torch.manual_seed(0)
        config = WhisperConfig(
            vocab_size=51865, num_mel_bins=80, d_model=d_model, encoder_layers=layers,
            decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
            encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, max_source_positions=1500,
            max_target_positions=448, decoder_start_token_id=50258, pad_token_id=50257,
            bos_token_id=50257, eos_token_id=50257,
        )
        with tempfile.TemporaryDirectory() as hf:
            WhisperForConditionalGeneration(config).save_pretrained(hf)
            whisper_tokenizer_json(Path(hf) / "tokenizer.json")
            ctranslate2.converters.TransformersConverter(
                hf, copy_files=["tokenizer.json"]).convert(str(tmp), quantization=quantization,
                                                           force=True)

    return _atomic_dir(target, build)


def build_tiny_whisper_ct2(cache_dir: Path) -> Path:
    """The tiny Whisper for the faster-whisper engine (CTranslate2, int8)."""
    return build_ct2_whisper(cache_dir / "tiny-whisper-ct2", d_model=64, layers=1, heads=2)


def build_tiny_ast(cache_dir: Path) -> Path:
    """ASTForAudioClassification with the 527 AudioSet labels and AST's own feature extractor."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

        torch.manual_seed(0)
        labels = audioset_labels()
        config = ASTConfig(
            hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
            num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        ASTForAudioClassification(config).save_pretrained(tmp)
        with warnings.catch_warnings():  # AST's 128-bin mel bank: see models/loaders.py
            warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
            ASTFeatureExtractor().save_pretrained(tmp)

    return _atomic_dir(cache_dir / "tiny-ast", build)


def build_tiny_emotion(cache_dir: Path) -> Path:
    """Wav2Vec2ForSequenceClassification with SUPERB-ER's four labels."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import (
            Wav2Vec2Config,
            Wav2Vec2FeatureExtractor,
            Wav2Vec2ForSequenceClassification,
        )

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


def build_tiny_speaker(cache_dir: Path) -> Path:
    """resemblyzer's VoiceEncoder architecture with random weights, as its state-dict file
    (for plumbing tests: the default loads the real encoder from resemblyzer's wheel)."""

    def build(tmp: Path) -> None:
        import torch
        from resemblyzer import VoiceEncoder

        from watchme_pipeline.models.speaker import wheel_weights

        torch.manual_seed(0)
        model = VoiceEncoder("cpu", verbose=False, weights_fpath=wheel_weights())
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        torch.save({"model_state": model.state_dict()}, tmp / "encoder.pt")

    return _atomic_dir(cache_dir / "tiny-speaker", build) / "encoder.pt"


TINY_BUILDERS = {
    "whisper": build_tiny_whisper,
    "whisper-ct2": build_tiny_whisper_ct2,
    "events": build_tiny_ast,
    "emotion": build_tiny_emotion,
    "speaker": build_tiny_speaker,
}
