"""The models a deployment can choose, in one place: default ids, engines, runtimes, and what
is known about their sizes before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from watchme_pipeline.models.kinds import MODEL_KINDS

KINDS = tuple(MODEL_KINDS)
PROFILES = ("standard", "tiny")  # tiny: random-weight stand-ins with the real architectures
DEFAULT_MODELS = {k.name: k.default_model for k in MODEL_KINDS.values()}
# Whisper engines behind one interface (models/transcribe.py). The default is the one
# `make eval` measured, with the real weights, as meeting every target at half
# openai-whisper's model time (docs/accuracy.md).
WHISPER_ENGINES = ("openai-whisper", "faster-whisper")
DEFAULT_WHISPER_ENGINE = "faster-whisper"
RUNTIMES = ("onnxruntime", "pytorch")  # for the audio classifiers (events, emotion)
# make bench: ONNX Runtime fp32 equals PyTorch within 1e-4 and runs at its speed here (both at
# the CPU's fp32 matmul rate), so PyTorch stays the default: no export at the first load (25 s,
# ~1 GB), less memory. `quantize="events"` (ONNX Runtime int8) is 1.8x faster.
DEFAULT_EVENT_RUNTIME = "pytorch"
# wav2vec2 on ONNX Runtime: its step needs neither torch nor transformers, and peaks at about
# 800 MB instead of 1,200 (make bench), inside the fleet's 1 GB emotion container; the logits
# match PyTorch's within 1e-4 (checked at each export).
DEFAULT_EMOTION_RUNTIME = "onnxruntime"
QUANTIZE = ("", "events")  # events: AST on ONNX Runtime int8, weights per channel
# fp32 sizes of the standard checkpoints (parameters x 4 bytes), used before anything is loaded.
KNOWN_SIZES_MB = {
    "tiny": 39 * 4, "base": 74 * 4, "small": 244 * 4, "medium": 769 * 4,
    "MIT/ast-finetuned-audioset-10-10-0.4593": 87 * 4,
    "MIT/ast-finetuned-audioset-16-16-0.442": 87 * 4,
    "superb/wav2vec2-base-superb-er": 95 * 4,
    "resemblyzer": 17,  # its wheel's pretrained.pt (the pods' sizes are read from here)
}


class ModelConfigError(ValueError):
    """A model setting no code path serves; the message names the variable."""


@dataclass(frozen=True)
class ModelChoice:
    """Which models a deployment runs, and how (validated when made)."""

    profile: str = "standard"
    whisper_model: str = DEFAULT_MODELS["whisper"]
    event_model: str = DEFAULT_MODELS["events"]
    emotion_model: str = DEFAULT_MODELS["emotion"]
    speaker_model: str = DEFAULT_MODELS["speaker"]
    whisper_engine: str = DEFAULT_WHISPER_ENGINE
    whisper_compute_type: str = "int8"  # faster-whisper (CTranslate2) weights on CPU
    event_runtime: str = DEFAULT_EVENT_RUNTIME
    quantize: str = ""
    emotion_runtime: str = DEFAULT_EMOTION_RUNTIME

    def __post_init__(self) -> None:
        for value, allowed, var in (
            (self.profile, PROFILES, "WATCHME_MODEL_PROFILE"),
            (self.whisper_engine, WHISPER_ENGINES, "WATCHME_WHISPER_ENGINE"),
            (self.event_runtime, RUNTIMES, "WATCHME_EVENT_RUNTIME"),
            (self.emotion_runtime, RUNTIMES, "emotion_runtime"),
        ):
            if value not in allowed:
                raise ModelConfigError(f"{var}={value!r}: expected one of {allowed}")
        if self.quantize not in QUANTIZE:
            raise ModelConfigError(
                f"WATCHME_QUANTIZE={self.quantize!r}: only 'events' (AST on ONNX Runtime int8) "
                "is supported; PyTorch's int8 dynamic quantization (torch.ao.quantization) is "
                "deprecated and was removed")

    def configured(self, kind: str) -> str:
        """The id or local path configured for ``kind``."""
        if kind not in KINDS:
            raise ModelConfigError(f"unknown model kind {kind!r}; expected one of {KINDS}")
        return getattr(self, MODEL_KINDS[kind].choice_field)

    def ct2(self, kind: str) -> bool:
        """Whisper on the faster-whisper engine: a CTranslate2 model, not a torch one."""
        return kind == "whisper" and self.whisper_engine == "faster-whisper"

    def onnx_precision(self, kind: str) -> str | None:
        """fp32 or int8 where ``kind`` is configured to run on ONNX Runtime, else None."""
        if kind == "emotion":
            return "fp32" if self.emotion_runtime == "onnxruntime" else None
        if kind != "events" or (self.event_runtime == "pytorch" and self.quantize != "events"):
            return None  # int8 (quantize="events") exists on ONNX Runtime only
        return "int8" if self.quantize == "events" else "fp32"
