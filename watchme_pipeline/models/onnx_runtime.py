"""Audio classifiers (AST for events, wav2vec2 for emotion) on ONNX Runtime: exported once
from the checkpoint the registry resolved, cached beside it, checked against PyTorch before use.
A cached export loads without PyTorch or transformers' modeling code; wav2vec2's also without
transformers at all (``Wav2Vec2Inputs``), which keeps the emotion step inside 1 GB.

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
import warnings
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
    from importlib.metadata import version

    # The installed torch's version, without importing it (a cached export loads without it).
    exporter = f"torch{version('torch').split('+')[0]}-opset{OPSET}-{EXPORT_RECIPE}"
    return f"{label or folder.name}@{checkpoint_hash(folder)}-{exporter}-{precision}.onnx"


# The check inputs' lengths in samples: AST takes whole 10.24 s windows; wav2vec2 takes chunks
# of any length up to 5 s, so its export is dynamic in time and checked at two lengths.
CHECK_SAMPLES = {"events": (163_840,), "emotion": (80_000, 36_800)}


def check_inputs(extractor: Any, kind: str = "events") -> list[dict[str, np.ndarray]]:
    """Fixed inputs (seeded noise and tones), the same at export and in tests."""
    rng = np.random.default_rng(1234)
    out = []
    for n in CHECK_SAMPLES[kind]:
        t = np.arange(n) / 16_000
        audio = (0.05 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * 440 * t)).astype(
            np.float32)
        out.append({"input_values": np.asarray(extractor(
            [audio], sampling_rate=16_000, return_tensors="np")["input_values"],
            dtype=np.float32)})
    return out


def check_input(extractor: Any) -> dict[str, np.ndarray]:
    """AST's 10.24 s check input."""
    return check_inputs(extractor, "events")[0]


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


def _session(path: Path, threads: int, arena: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # ORT's arena keeps the largest activations it has seen; for inputs of many lengths
    # (wav2vec2's chunks) that is memory held for nothing: 50 MB of the emotion step's peak.
    options.enable_cpu_mem_arena = arena
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


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence what the exporter says that no one here can act on: that torchvision is not
    installed (its vision ops are registered when present; we export none), and torch's own
    pytree FutureWarning, raised inside torch.export. Everything else still shows."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                                    category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def export_classifier(model: Any, extractor: Any, folder: Path, cache: Path, precision: str,
                      threads: int, label: str | None = None, kind: str = "events"
                      ) -> OnnxExport:
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
    checks = check_inputs(extractor, kind)
    inputs = checks[0]
    dims = {0: torch.export.Dim("batch", max=64)}
    if len(CHECK_SAMPLES[kind]) > 1:  # chunks of any length: the time axis is dynamic too
        dims[1] = torch.export.Dim("samples", min=8_000, max=16_000 * 30)
    # AST attends over every patch of whole windows: traced without mask (plain attention).
    attention = plain_attention(model) if kind == "events" else contextlib.nullcontext()
    # Unique temporary names: two runs exporting at once each write their own file, and the
    # rename into place is atomic.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
    fp32_tmp = path.with_name(f"{path.stem}.{os.getpid()}.fp32.tmp.onnx")
    try:
        with torch.inference_mode(False), torch.no_grad(), attention, quiet_exporter():
            torch.onnx.export(model.eval(), (torch.from_numpy(inputs["input_values"]),),
                              str(tmp if precision == "fp32" else fp32_tmp),
                              input_names=["input_values"], output_names=["logits"],
                              dynamic_shapes=(dims,),
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
    session = _session(tmp, 1)
    diff = 0.0
    for check in checks:
        with torch.inference_mode():
            expected = model(torch.from_numpy(check["input_values"])).logits.numpy()
        got = session.run(["logits"], {"input_values": check["input_values"]})[0]
        diff = max(diff, float(np.abs(expected - got).max()))
    del session
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
    """Looks like the transformers model to the stages: ``config`` and
    ``model(input_values).logits``, a torch tensor for a torch input, else a numpy array
    (the emotion step imports no torch at all)."""

    runtime = "onnxruntime"

    def __init__(self, export: OnnxExport, config: Any, threads: int,
                 fixed_shapes: bool = True) -> None:
        self.export = export
        self.config = config
        self.session = _session(export.path, threads, arena=fixed_shapes)

    def __call__(self, input_values: Any, **_: Any) -> Any:
        is_torch = hasattr(input_values, "numpy")
        array = input_values.numpy() if is_torch else input_values
        logits = self.session.run(["logits"], {"input_values": np.ascontiguousarray(
            array, dtype=np.float32)})[0]
        if is_torch:
            import torch

            logits = torch.from_numpy(logits)
        return types.SimpleNamespace(logits=logits)


def classifier_config(folder: Path) -> types.SimpleNamespace:
    """What the stages read of a checkpoint's config.json (its labels), without transformers."""
    config = json.loads((folder / "config.json").read_text())
    id2label = {int(k): v for k, v in config["id2label"].items()}
    return types.SimpleNamespace(id2label=id2label, num_labels=len(id2label))


class Wav2Vec2Inputs:
    """wav2vec2's feature extractor in numpy, from the checkpoint's preprocessor_config.json:
    the raw waveform as float32, normalized to zero mean and unit variance per item when the
    checkpoint asks for it (transformers' ``Wav2Vec2FeatureExtractor`` on unpadded batches,
    which is what the emotion stage sends; a test holds the two equal)."""

    def __init__(self, folder: Path) -> None:
        config = json.loads((folder / "preprocessor_config.json").read_text())
        self.do_normalize = bool(config.get("do_normalize", True))
        self.sampling_rate = int(config.get("sampling_rate", 16_000))

    def __call__(self, audios: list[np.ndarray], sampling_rate: int, return_tensors: str = "np",
                 **_: Any) -> dict[str, np.ndarray]:
        if sampling_rate != self.sampling_rate or return_tensors != "np":
            raise ValueError(f"expects {self.sampling_rate} Hz audio, numpy out")
        if len({len(a) for a in audios}) > 1:
            raise ValueError("items of one batch must have equal lengths (no padding)")
        x = np.stack([np.asarray(a, dtype=np.float32) for a in audios])
        if self.do_normalize:
            x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(
                x.var(axis=1, keepdims=True) + 1e-7)
        return {"input_values": x.astype(np.float32)}
