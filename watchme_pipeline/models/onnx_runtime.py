"""Audio classifiers (AST) on ONNX Runtime: exported once from the checkpoint the registry
resolved, cached beside it, checked against PyTorch before use.

The export's file name carries the checkpoint's hash and the exporter's version, so a new
checkpoint or a new torch gives a new export; a sidecar records the export's own SHA-256, so a
corrupt or truncated file is found and rebuilt. An export that fails, or whose logits differ
from PyTorch's by more than ``TOLERANCE`` on a fixed input, is not used: the caller falls back
to PyTorch with one warning naming the model and the difference.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from watchme_pipeline.models.identity import checkpoint_hash
from watchme_pipeline.models.weights import sha256_file

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest |logit difference| against PyTorch fp32 on the check input
OPSET = 18
# How the graph is traced, in the file name so a changed recipe re-exports. "plain": attention
# exported as matmul-softmax-matmul with no mask. AST's windows are never padded, yet under
# export transformers materialises an all-zero mask and torch's SDPA decomposition adds a NaN
# guard (IsNaN + Where over 12x1214x1214 scores a layer): together 0.8 s of a 2.5 s window on
# ONNX Runtime fp32 here, and they kept int8 at 1.6 s a window instead of 0.5.
EXPORT_RECIPE = "plain"
PLAIN_ATTENTION = "watchme_plain"


class ExportRejected(RuntimeError):
    """The export failed or disagrees with PyTorch; the message says by how much."""


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    precision: str  # fp32 | int8
    max_abs_diff: float  # against PyTorch fp32 on the check input, when exported


def file_hash(path: Path) -> str:
    return sha256_file(path)


def export_name(folder: Path, precision: str, label: str | None = None) -> str:
    """``{label}@{checkpoint hash}-torch{version}-opset{N}-{precision}.onnx``; the label is
    the checkpoint's folder name, or its hub id with '/' as '--'."""
    import torch

    exporter = f"torch{torch.__version__.split('+')[0]}-opset{OPSET}-{EXPORT_RECIPE}"
    return f"{label or folder.name}@{checkpoint_hash(folder)}-{exporter}-{precision}.onnx"


def check_input(extractor: Any) -> dict[str, np.ndarray]:
    """A fixed 10.24 s input (seeded noise and tones), the same at export and in tests."""
    rng = np.random.default_rng(1234)
    t = np.arange(163_840) / 16_000
    audio = (0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 440 * t)).astype(
        np.float32)
    return {k: v.numpy() for k, v in extractor([audio], sampling_rate=16_000,
                                               return_tensors="pt").items()}


def _plain_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                     scaling: float | None = None, dropout: float = 0.0, **_: Any
                     ) -> tuple[Any, None]:
    """Attention without mask or NaN guard (AST attends over every patch of a whole window)."""
    import torch

    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.softmax(torch.matmul(query * scaling, key.transpose(2, 3)), dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _no_mask(*_: Any, **__: Any) -> None:
    return None


@contextlib.contextmanager
def plain_attention(model: Any) -> Iterator[None]:
    """``model`` traced with plain attention, its own implementation restored after."""
    from transformers import AttentionInterface, AttentionMaskInterface

    # Registering the same name again replaces the entry: safe to repeat.
    AttentionInterface.register(PLAIN_ATTENTION, _plain_attention)
    AttentionMaskInterface.register(PLAIN_ATTENTION, _no_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(PLAIN_ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _valid(path: Path) -> bool:
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text())["sha256"] == file_hash(path)
    except (ValueError, KeyError):
        return False


def rejection_marker(path: Path) -> Path:
    return path.with_name(path.name + ".rejected")


def cached_export(folder: Path, cache: Path, precision: str, label: str | None = None
                  ) -> OnnxExport | None:
    """The valid export of this checkpoint, if there is one (a corrupt one is not)."""
    path = cache / export_name(folder, precision, label)
    if not _valid(path):
        return None
    return OnnxExport(path, precision, json.loads(path.with_suffix(".json").read_text())[
        "max_abs_diff"])


def export_classifier(model: Any, extractor: Any, folder: Path, cache: Path, precision: str,
                      threads: int, label: str | None = None) -> OnnxExport:
    """The checked ONNX export of ``model`` (an audio classifier from ``folder``), built if
    missing or corrupt. Raises ExportRejected if it cannot be made or disagrees."""
    import torch

    cache.mkdir(parents=True, exist_ok=True)
    label = label or folder.name
    path = cache / export_name(folder, precision, label)
    if _valid(path):
        meta = json.loads(path.with_suffix(".json").read_text())
        return OnnxExport(path, precision, meta["max_abs_diff"])
    if path.exists():
        log.warning("ONNX export %s does not match its recorded hash: rebuilding it", path.name)
    inputs = check_input(extractor)
    # Unique temporary names: two runs exporting at once each write their own file, and the
    # rename into place is atomic.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
    fp32_tmp = path.with_name(f"{path.stem}.{os.getpid()}.fp32.tmp.onnx")
    try:
        with torch.inference_mode(False), torch.no_grad(), plain_attention(model):
            torch.onnx.export(model.eval(), (torch.from_numpy(inputs["input_values"]),),
                              str(tmp if precision == "fp32" else fp32_tmp),
                              input_names=["input_values"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch", max=64)},),
                              opset_version=OPSET, dynamo=True, external_data=False,
                              optimize=True, verbose=False)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32_tmp), str(tmp), per_channel=True,
                             weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: use PyTorch
        tmp.unlink(missing_ok=True)
        message = (f"{label}: ONNX export failed ({type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
        rejection_marker(path).write_text(message)
        raise ExportRejected(message) from None
    finally:
        fp32_tmp.unlink(missing_ok=True)
    with torch.inference_mode():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    got = _session(tmp, 1).run(["logits"], {"input_values": inputs["input_values"]})[0]
    diff = float(np.abs(expected - got).max())
    if precision == "fp32" and diff > TOLERANCE:
        tmp.unlink(missing_ok=True)
        message = (f"{label}: ONNX logits differ from PyTorch's by {diff:.2e} "
                   f"(> {TOLERANCE:g})")
        rejection_marker(path).write_text(message)  # the registry's model id says PyTorch
        raise ExportRejected(message)
    sidecar = tmp.with_suffix(".json")
    sidecar.write_text(json.dumps({"sha256": file_hash(tmp), "max_abs_diff": diff}))
    tmp.replace(path)
    sidecar.replace(path.with_suffix(".json"))
    return OnnxExport(path, precision, diff)


class OnnxClassifier:
    """Looks like the transformers model to ``classify_events``: ``config`` and
    ``model(**inputs).logits``."""

    def __init__(self, export: OnnxExport, config: Any, threads: int) -> None:
        self.export = export
        self.config = config
        self.session = _session(export.path, threads)

    def __call__(self, input_values: Any, **_: Any) -> Any:
        import torch

        array = input_values.numpy() if hasattr(input_values, "numpy") else input_values
        logits = self.session.run(["logits"], {"input_values": np.ascontiguousarray(array)})[0]
        return types.SimpleNamespace(logits=torch.from_numpy(logits))
