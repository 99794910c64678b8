"""Every model kind, declared once: its default checkpoint, the variable and the fields that
choose it, what it costs in memory beyond its weights (measured by `make bench`), its largest
useful batch, and its tiny random-weight builder. The catalog, the registry, the settings and
the variables table derive what they need from ``MODEL_KINDS``.

Adding a kind (say, laughter): one ``ModelKind`` here, a ``{setting}_model`` field on
``catalog.ModelChoice`` and ``ModelRegistry``, a ``{setting}_batch_size`` field on
``PipelineSettings``, its loader branch where its architecture is new (``loaders.py``) and its
tiny builder (``tiny.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelKind:
    name: str  # the registry's kind, as stages name it (Stage.model_kind)
    default_model: str  # a hub id or a Whisper size
    setting: str  # what its settings are named by: WATCHME_{SETTING}_MODEL, {setting}_model
    # What a step's peak RSS adds over the weights (make bench, a process per step): importing
    # its runtime the first time (``runtime_module`` tells whether it is imported yet), and one
    # batch item's activations on CPU, fp32.
    runtime_mb: int
    runtime_module: str
    activation_mb: int
    max_batch: int  # the largest batch worth having on CPU (measured)
    tiny_builder: str  # its key in tiny.TINY_BUILDERS
    # Exporting it to ONNX holds the PyTorch model, the trace and the proto at once: the peak
    # over the weights. None: it never runs on ONNX Runtime.
    export_factor: float | None = None

    @property
    def variable(self) -> str:
        """The environment variable that chooses its checkpoint."""
        return f"WATCHME_{self.setting.upper()}_MODEL"

    @property
    def choice_field(self) -> str:
        """Its field on ModelChoice and ModelRegistry."""
        return f"{self.setting}_model"

    @property
    def batch_setting(self) -> str:
        """Its batch size's field on PipelineSettings."""
        return f"{self.setting}_batch_size"


WHISPER = ModelKind(
    name="whisper", default_model="base", setting="whisper",
    # faster-whisper brings CTranslate2, tokenizers and PyAV; one 30 s window.
    runtime_mb=200, runtime_module="ctranslate2", activation_mb=170, max_batch=4,
    tiny_builder="whisper")
EVENTS = ModelKind(
    name="events", default_model="MIT/ast-finetuned-audioset-10-10-0.4593", setting="event",
    # transformers' modeling code pulls in torch._dynamo and torch.distributed; one 10.24 s
    # window; its activations include what glibc keeps of freed tensors (the step peaked at
    # 1,038-1,153 MB from run to run).
    runtime_mb=330, runtime_module="transformers.modeling_utils", activation_mb=310,
    max_batch=1, tiny_builder="events", export_factor=3.0)
EMOTION = ModelKind(
    name="emotion", default_model="superb/wav2vec2-base-superb-er", setting="emotion",
    # one 5 s chunk; wav2vec2 is dynamic in time, so its export peaks at 6.5x its weights.
    runtime_mb=250, runtime_module="transformers.modeling_utils", activation_mb=350,
    max_batch=1, tiny_builder="emotion", export_factor=6.5)

SPEAKER = ModelKind(
    name="speaker", default_model="resemblyzer", setting="speaker",
    # resemblyzer's GE2E encoder (3-layer LSTM, 17 MB) from its wheel; its runtime is torch,
    # librosa's mel (numba) and scikit-learn for the profile (make bench: the step peaked at
    # 630 MB); a batch of 16 turns' 1.6 s windows.
    runtime_mb=400, runtime_module="librosa", activation_mb=40, max_batch=16,
    tiny_builder="speaker")

MODEL_KINDS: dict[str, ModelKind] = {k.name: k for k in (WHISPER, EVENTS, EMOTION, SPEAKER)}
