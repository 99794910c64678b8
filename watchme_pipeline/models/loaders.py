"""Loading a resolved source into a model: the three runtimes (faster-whisper's CTranslate2,
openai-whisper, transformers) and AST's ONNX Runtime export."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from watchme_pipeline.models.catalog import ModelChoice
from watchme_pipeline.models.sources import checkpoint_folder, onnx_label

log = logging.getLogger(__name__)


def load_model(choice: ModelChoice, kind: str, source: str, *, threads: int, cache_dir: Path,
               precision: str | None) -> tuple[Any, Any]:
    """(model, feature extractor or None) for ``kind`` from ``source``; ``precision`` (fp32,
    int8) runs it on ONNX Runtime, exported once and checked against PyTorch."""
    if precision is not None:
        cached = cached_onnx(choice, kind, source, cache_dir, precision, threads)
        if cached is not None:  # no PyTorch model needed at all
            return cached
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if choice.ct2(kind):
        from faster_whisper import WhisperModel

        return WhisperModel(source, device="cpu", compute_type=choice.whisper_compute_type,
                            cpu_threads=threads, download_root=str(cache_dir)), None
    if kind == "speaker":
        from watchme_pipeline.models.speaker import load_encoder

        return load_encoder(source), None
    if kind == "whisper":
        import whisper

        return whisper.load_model(source, device="cpu", download_root=str(cache_dir)), None
    from transformers import AutoModelForAudioClassification

    extractor = feature_extractor(source)
    if precision is None:
        return AutoModelForAudioClassification.from_pretrained(source).eval(), extractor
    from watchme_pipeline.models.onnx_runtime import ExportRejected, OnnxClassifier

    folder = checkpoint_folder(source)
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    try:
        export = build_onnx(choice, kind, model, extractor, folder, cache_dir, precision,
                            threads)
    except ExportRejected as exc:
        warnings.warn(f"{exc}: {kind} runs on PyTorch", RuntimeWarning, stacklevel=2)
        log.warning("%s: %s runs on PyTorch", exc, kind)
        return model, extractor
    return OnnxClassifier(export, model.config, threads, fixed_shapes=kind == "events"), extractor


def feature_extractor(source: str) -> Any:
    """transformers' feature extractor of a checkpoint."""
    from transformers import AutoFeatureExtractor

    with warnings.catch_warnings():
        # AST's own 128-bin mel bank at 16 kHz leaves a filter empty; transformers warns
        # at every load, and nothing can be done about it.
        warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
        return AutoFeatureExtractor.from_pretrained(source)


def cached_onnx(choice: ModelChoice, kind: str, source: str, cache_dir: Path, precision: str,
                threads: int) -> tuple[Any, Any] | None:
    """(model, extractor) from a valid cached export, or None. wav2vec2's loads without
    transformers (its inputs are a normalized waveform); AST's needs only its extractor."""
    from watchme_pipeline.models.onnx_runtime import (
        OnnxClassifier,
        Wav2Vec2Inputs,
        cached_export,
        classifier_config,
    )

    folder = checkpoint_folder(source)
    export = cached_export(folder, onnx_dir(cache_dir), precision, onnx_label(choice, kind))
    if export is None:
        return None
    extractor = Wav2Vec2Inputs(folder) if kind == "emotion" else feature_extractor(str(folder))
    return (OnnxClassifier(export, classifier_config(folder), threads,
                           fixed_shapes=kind == "events"), extractor)


def build_onnx(choice: ModelChoice, kind: str, model: Any, extractor: Any, folder: Path,
               cache_dir: Path, precision: str, threads: int) -> Any:
    """Export ``model`` to ONNX and check it (raises ExportRejected)."""
    from watchme_pipeline.models.onnx_runtime import export_classifier

    return export_classifier(model, extractor, folder, onnx_dir(cache_dir), precision, threads,
                             onnx_label(choice, kind), kind=kind)


def onnx_cached(choice: ModelChoice, kind: str, source: str, cache_dir: Path,
                precision: str) -> bool:
    """A valid export of this checkpoint at this precision is in the cache."""
    from watchme_pipeline.models.onnx_runtime import cached_export

    try:
        folder = checkpoint_folder(source, local_only=True)
    except OSError:  # a hub id not in the hub's cache: not exported either
        return False
    return cached_export(folder, onnx_dir(cache_dir), precision,
                         onnx_label(choice, kind)) is not None


def onnx_dir(cache_dir: Path) -> Path:
    """Where ONNX exports are kept, beside the checkpoints."""
    return cache_dir / "onnx"


def export_rejected(choice: ModelChoice, kind: str, cache_dir: Path, precision: str) -> bool:
    """An earlier export of this checkpoint at this precision disagreed with PyTorch."""
    pattern = f"{onnx_label(choice, kind)}@*-{precision}.onnx.rejected"
    return any(onnx_dir(cache_dir).glob(pattern))
