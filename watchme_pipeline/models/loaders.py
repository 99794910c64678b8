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
    if choice.ct2(kind):
        from faster_whisper import WhisperModel

        return WhisperModel(source, device="cpu", compute_type=choice.whisper_compute_type,
                            cpu_threads=threads, download_root=str(cache_dir)), None
    if kind == "whisper":
        import whisper

        return whisper.load_model(source, device="cpu", download_root=str(cache_dir)), None
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    with warnings.catch_warnings():
        # AST's own 128-bin mel bank at 16 kHz leaves a filter empty; transformers warns
        # at every load, and nothing can be done about it.
        warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
        extractor = AutoFeatureExtractor.from_pretrained(source)
    if precision is None:
        return AutoModelForAudioClassification.from_pretrained(source).eval(), extractor
    from watchme_pipeline.models.onnx_runtime import (
        ExportRejected,
        OnnxClassifier,
        cached_export,
        export_classifier,
    )

    folder = checkpoint_folder(source)
    label = onnx_label(choice, kind)
    onnx_cache = onnx_dir(cache_dir)
    export = cached_export(folder, onnx_cache, precision, label)
    if export is not None:  # no PyTorch model needed at all
        return OnnxClassifier(export, AutoConfig.from_pretrained(folder), threads), extractor
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    try:
        export = export_classifier(model, extractor, folder, onnx_cache, precision, threads,
                                   label)
    except ExportRejected as exc:
        warnings.warn(f"{exc}: {kind} runs on PyTorch", RuntimeWarning, stacklevel=2)
        log.warning("%s: %s runs on PyTorch", exc, kind)
        return model, extractor
    return OnnxClassifier(export, model.config, threads), extractor


def onnx_dir(cache_dir: Path) -> Path:
    """Where ONNX exports are kept, beside the checkpoints."""
    return cache_dir / "onnx"


def export_rejected(choice: ModelChoice, kind: str, cache_dir: Path, precision: str) -> bool:
    """An earlier export of this checkpoint at this precision disagreed with PyTorch."""
    pattern = f"{onnx_label(choice, kind)}@*-{precision}.onnx.rejected"
    return any(onnx_dir(cache_dir).glob(pattern))
