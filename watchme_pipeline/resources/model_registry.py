"""The only way a stage gets a model: loaded lazily inside a step, once per run, within the
process's memory limit.

Dagster builds resources for the whole run, so nothing is loaded at resource set-up; the first
``get(kind, memory_mb)`` inside a step loads it, later steps of the same in-process run reuse
it. Before a load the registry measures what the process holds: least-recently-used models are
released until the new one (weights and the activations of one batch item) fits under the
limit, and a model that cannot fit even alone is refused at once, naming model, need and limit.

The work behind it is in ``models/``: which models (``catalog``), where their weights come
from (``sources``), what they are (``identity``) and how they load (``loaders``); this module
keeps memory.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from watchme_pipeline.memory import give_back, rss_mb
from watchme_pipeline.models.catalog import (
    DEFAULT_EMOTION_RUNTIME,
    DEFAULT_EVENT_RUNTIME,
    DEFAULT_MODELS,
    DEFAULT_WHISPER_ENGINE,
    KNOWN_SIZES_MB,
    ModelChoice,
)
from watchme_pipeline.models.identity import checkpoint_hash, weights_mb
from watchme_pipeline.models.kinds import MODEL_KINDS
from watchme_pipeline.models.loaders import export_rejected, load_model, onnx_cached
from watchme_pipeline.models.sources import is_stand_in, resolve_source
from watchme_pipeline.settings import Deployment
from watchme_pipeline.stage import NotRetried

log = logging.getLogger(__name__)

# What each kind costs beyond its weights, its ONNX export's peak and its largest useful
# batch: declared with the kind (models/kinds.py).
RUNTIME_MB = {k.name: k.runtime_mb for k in MODEL_KINDS.values()}
RUNTIME_MODULES = {k.name: k.runtime_module for k in MODEL_KINDS.values()}
ACTIVATION_MB = {k.name: k.activation_mb for k in MODEL_KINDS.values()}
EXPORT_FACTOR = {k.name: k.export_factor for k in MODEL_KINDS.values() if k.export_factor}
MAX_BATCH = {k.name: k.max_batch for k in MODEL_KINDS.values()}
ONNXRUNTIME_MB = 60  # importing ONNX Runtime itself (make bench)


def standard_need_mb(kind: str) -> float:
    """What the default model of ``kind`` adds to a step's process, before anything is
    loaded: its runtime, its weights (int8 on faster-whisper) and one batch item."""
    choice = ModelChoice()
    weights = KNOWN_SIZES_MB[DEFAULT_MODELS[kind]] / (4 if choice.ct2(kind) else 1)
    runtime = ONNXRUNTIME_MB if choice.onnx_precision(kind) else RUNTIME_MB[kind]
    return runtime + weights + ACTIVATION_MB[kind]


class ModelBudgetError(NotRetried, RuntimeError):
    """A model refused by the process limit; the figures are kept for reports."""

    def __init__(self, message: str, *, model: str = "", kind: str = "", need_mb: float = 0,
                 held_mb: float = 0, limit_mb: int = 0) -> None:
        super().__init__(message)
        self.figures = {"model": model, "kind": kind, "need_mb": round(need_mb),
                        "held_mb": round(held_mb), "limit_mb": limit_mb}


@dataclass
class LoadedModel:
    kind: str
    model_id: str
    model: Any
    extractor: Any
    size_mb: float


def cpu_limit() -> int:
    """CPUs this process may use: the cgroup quota (containers, pods) or the affinity mask."""
    import math
    import os

    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


class ModelRegistry(dg.ConfigurableResource):
    """Models by id or local path; ``profile='tiny'`` builds random-weight stand-ins."""

    profile: str = "standard"
    whisper_model: str = DEFAULT_MODELS["whisper"]
    event_model: str = DEFAULT_MODELS["events"]
    emotion_model: str = DEFAULT_MODELS["emotion"]
    speaker_model: str = DEFAULT_MODELS["speaker"]  # resemblyzer: the encoder in its wheel
    cache_dir: str = "data/models"
    torch_threads: int = 0  # 0: as many as the CPUs this process may use
    whisper_engine: str = DEFAULT_WHISPER_ENGINE  # openai-whisper | faster-whisper
    whisper_compute_type: str = "int8"  # faster-whisper (CTranslate2) weights on CPU
    # The event model (AST) on ONNX Runtime (exported once, checked against PyTorch) or
    # PyTorch; `quantize="events"`: ONNX Runtime int8, weights quantized per channel.
    event_runtime: str = DEFAULT_EVENT_RUNTIME
    quantize: str = ""
    # The emotion model (wav2vec2) on ONNX Runtime (default) or PyTorch.
    emotion_runtime: str = DEFAULT_EMOTION_RUNTIME

    _loaded: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _loads: list = PrivateAttr(default_factory=list)  # kinds loaded, in order

    @property
    def choice(self) -> ModelChoice:
        """The configured models, validated (a bad value raises, naming its variable)."""
        models = {k.choice_field: getattr(self, k.choice_field) for k in MODEL_KINDS.values()}
        return ModelChoice(profile=self.profile, **models,
                           whisper_engine=self.whisper_engine,
                           whisper_compute_type=self.whisper_compute_type,
                           event_runtime=self.event_runtime, quantize=self.quantize,
                           emotion_runtime=self.emotion_runtime)

    # -- which model -----------------------------------------------------------------------

    def source(self, kind: str) -> str:
        """What the loader is given for ``kind``: a local path or an id."""
        return resolve_source(self.choice, kind, Path(self.cache_dir))

    def is_stand_in(self, kind: str) -> bool:
        """True where a tiny random-weight model stands in for the real one."""
        return is_stand_in(self.choice, kind, Path(self.cache_dir))

    def onnx_precision(self, kind: str) -> str | None:
        """fp32 or int8 where ``kind`` runs on ONNX Runtime; None on PyTorch (configured so,
        or because the export was rejected: see models/onnx_runtime.py)."""
        precision = self.choice.onnx_precision(kind)
        if precision and export_rejected(self.choice, kind, Path(self.cache_dir), precision):
            return None
        return precision

    def model_id(self, kind: str) -> str:
        """What produced a result: the id, or a local path with its checkpoint's hash, and
        the runtime where it is not PyTorch fp32 (faster-whisper's int8 CTranslate2, ONNX
        Runtime), since they give slightly different scores."""
        choice = self.choice
        engine = f"+faster-whisper-{choice.whisper_compute_type}" if choice.ct2(kind) else ""
        precision = self.onnx_precision(kind)
        if precision:
            engine += f"+onnxruntime-{precision}"
        if self.is_stand_in(kind):
            return f"tiny-{kind}{engine}"
        if kind == "whisper" and choice.whisper_model == "base":
            return "base" + engine  # by name or from the verified cache: the same tensors
        if kind == "speaker" and choice.speaker_model == "resemblyzer":
            return f"resemblyzer-{package_version('resemblyzer')}"  # the wheel's weights
        path = Path(self.source(kind))
        if path.exists():
            return f"{path.name}@sha256:{checkpoint_hash(path)}{engine}"
        return choice.configured(kind) + engine

    # -- memory ----------------------------------------------------------------------------

    def estimate_mb(self, kind: str) -> float:
        """The weights' resident size: their files' size, or the known size of an id."""
        source = self.source(kind)
        if Path(source).exists():
            return weights_mb(Path(source))
        size = KNOWN_SIZES_MB.get(source, 400)
        if self.choice.ct2(kind) and self.whisper_compute_type.startswith("int8"):
            size /= 4  # one byte a weight instead of four
        return size

    def loaded_kinds(self) -> list[str]:
        return list(self._loaded)

    def exports_first(self, kind: str) -> bool:
        """True when loading ``kind`` must export it to ONNX first (no valid cached export)."""
        precision = self.onnx_precision(kind)
        return bool(precision) and not onnx_cached(self.choice, kind, self.source(kind),
                                                   Path(self.cache_dir), str(precision))

    def runtime_mb(self, kind: str, exporting: bool | None = None) -> float:
        """What importing the kind's runtime adds, if it is not imported yet (``exporting``:
        whether it must be exported first, when the caller knows)."""
        if self.exports_first(kind) if exporting is None else exporting:  # torch, then ORT
            return (RUNTIME_MB[kind] * ("transformers.modeling_utils" not in sys.modules)
                    + ONNXRUNTIME_MB * ("onnxruntime" not in sys.modules))
        if self.onnx_precision(kind):  # ONNX Runtime itself, not transformers' modeling code
            return 0.0 if "onnxruntime" in sys.modules else ONNXRUNTIME_MB
        ct2 = self.choice.ct2(kind)
        module = "whisper" if kind == "whisper" and not ct2 else RUNTIME_MODULES[kind]
        return 0.0 if module in sys.modules else RUNTIME_MB[kind]

    def need_mb(self, kind: str) -> float:
        """What loading ``kind`` adds to the process: its runtime's imports (the first time),
        its weights (or exporting them to ONNX), and one batch item's activations."""
        # Finding out hashes the checkpoint and the export: once here, not per term.
        exporting = self.exports_first(kind)
        weights = self.estimate_mb(kind) * (EXPORT_FACTOR[kind] if exporting else 1)
        return self.runtime_mb(kind, exporting) + weights + ACTIVATION_MB[kind]

    def get(self, kind: str, memory_mb: int | None = None,
            limit_source: str = "WATCHME_MEMORY_MB") -> LoadedModel:
        """The model, loaded once; with ``memory_mb`` (the process limit) other models are
        released first when it would not fit, and it is refused if it cannot fit alone
        (naming where the limit was set: ``limit_source``)."""
        if kind in self._loaded:
            self._loaded.move_to_end(kind)
            return self._loaded[kind]
        need = self.need_mb(kind)
        if memory_mb:
            while self._loaded and self.held_mb() + need > memory_mb:
                self.release(next(iter(self._loaded)))
            held = self.held_mb()
            if held + need > memory_mb:
                export = (" (most of it to export it to ONNX first: `python -m watchme_pipeline "
                          "export` does that once, ahead)" if self.exports_first(kind) else "")
                raise ModelBudgetError(
                    f"model {self.model_id(kind)} ({kind}) needs about {need:.0f} MB{export}, "
                    f"and the run process already holds {held:.0f} MB without it: more than "
                    f"its limit of {memory_mb} MB (set by {limit_source})",
                    model=self.model_id(kind), kind=kind, need_mb=need, held_mb=held,
                    limit_mb=memory_mb)
        t0 = time.perf_counter()
        model, extractor = self.load_model(kind)
        loaded = LoadedModel(kind, self.model_id(kind), model, extractor, need)
        self._loaded[kind] = loaded
        self._loads.append(kind)
        log.info("loaded %s model %s in %.1fs", kind, loaded.model_id, time.perf_counter() - t0)
        return loaded

    def held_mb(self) -> float:
        """What the process holds now (its resident set)."""
        return rss_mb()

    def loads(self) -> list[str]:
        """Every load by this registry, in order (a run loads each model at most once)."""
        return list(self._loads)

    def batch_size(self, kind: str, memory_mb: int | None, requested: int = 0) -> int:
        """Batch items that fit in what the limit leaves (at least 1), at most ``requested``
        (0: the most worth having on CPU)."""
        largest = requested or MAX_BATCH[kind]
        if not memory_mb:
            return largest
        fits = int((memory_mb - self.held_mb()) // ACTIVATION_MB[kind])
        return max(1, min(largest, fits))

    def release(self, kind: str) -> None:
        if self._loaded.pop(kind, None) is not None:
            give_back()

    def release_all(self) -> None:
        for kind in list(self._loaded):
            self.release(kind)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.release_all()

    def load_model(self, kind: str) -> tuple[Any, Any]:
        """Load ``kind`` (no memory bookkeeping: ``get`` does that): (model, extractor)."""
        threads = self.torch_threads or cpu_limit()
        return load_model(self.choice, kind, self.source(kind), threads=threads,
                          cache_dir=Path(self.cache_dir), precision=self.onnx_precision(kind))


def model_registry_for(deployment: Deployment) -> ModelRegistry:
    models = deployment.models
    return ModelRegistry(
        profile=models.profile, cache_dir=str(deployment.model_cache),
        **{k.choice_field: models.configured(k.name) for k in MODEL_KINDS.values()},
        whisper_engine=models.whisper_engine,
        event_runtime=models.event_runtime, quantize=models.quantize,
        emotion_runtime=models.emotion_runtime,
    )
