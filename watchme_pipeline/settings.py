"""Settings: what a deployment fixes at load, and what a run may change (a resource).

Both are built once, in ``definitions.py``, from the environment; nothing below it reads
``os.environ``.

| variable | default | what it chooses |
|---|---|---|
| WATCHME_DATA_DIR | ./data | where the embedded defaults keep their files |
| WATCHME_AUDIO_STORE | {data}/audio | the audio store: a local folder |
| WATCHME_DATABASE_URL | sqlite:///{data}/watchme.db | the result store |
| WATCHME_TIMEZONE | Asia/Tokyo | the devices' local day |
| WATCHME_START_DATE | 2025-01-01 | the first daily partition |
| WATCHME_MODEL_PROFILE | standard | standard checkpoints by id, or tiny random-weight models |
| WATCHME_WHISPER_MODEL / _EVENT_MODEL / _EMOTION_MODEL | see ModelRegistry | id or path |
| WATCHME_MEMORY_MB | 2000 | what the run process may hold (WATCHME_MODEL_MEMORY_MB: old name) |
| WATCHME_WHISPER_ENGINE | faster-whisper | or openai-whisper (batched) |
| WATCHME_EVENT_RUNTIME | pytorch | or onnxruntime (AST exported once, checked against PyTorch) |
| WATCHME_QUANTIZE | (none) | `events`: AST on ONNX Runtime int8, weights per channel |
| WATCHME_LANGUAGE | ja | transcription language (a Whisper code; 'auto' detects) |
| WATCHME_PROMPT_LANGUAGE | ja | language of the LLM prompt's instructions (ja, en) |
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

DEFAULT_MEMORY_MB = 2000


@dataclass(frozen=True)
class Deployment:
    """What is fixed when the code location loads: stores, partitions, model profile."""

    data_dir: Path
    audio_store: str
    database_url: str
    timezone: str
    start_date: str
    model_profile: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def model_cache(self) -> Path:
        return self.data_dir / "models"


class PipelineSettings(dg.ConfigurableResource):
    """What a run may change: every field can be set for one run in the Launchpad
    (``resources: {settings: {config: {...}}}``); the deployment's values are the defaults."""

    language: str = Field(default="ja", description="Transcription language, a Whisper code, "
                          "or 'auto' to detect it once per slot.")
    prompt_language: str = Field(default="ja", description="Language of the LLM prompt (ja, en).")
    recompute: bool = Field(default=False, description="Redo slots already completed with the "
                            "current model (a slot made by another model is always redone).")
    memory_mb: int = Field(default=DEFAULT_MEMORY_MB, description="What the run process may "
                           "hold, in MB: models are released and batches shrunk to stay under.")
    whisper_batch_size: int = Field(default=0, description="Whisper windows decoded together "
                                    "(openai-whisper); 0: as many as the memory limit allows, "
                                    "at most 4.")
    event_batch_size: int = Field(default=0, description="AST windows per forward pass; 0: as "
                                  "many as the memory limit allows, at most 1 (CPU gains "
                                  "nothing from more).")
    emotion_batch_size: int = Field(default=0, description="wav2vec2 chunks per forward pass; "
                                    "0: as many as the memory limit allows, at most 1.")

    @property
    def whisper_language(self) -> str | None:
        return None if self.language == "auto" else self.language

    def batch_size(self, kind: str) -> int:
        return {"whisper": self.whisper_batch_size, "events": self.event_batch_size,
                "emotion": self.emotion_batch_size}[kind]


def memory_limit_mb(env: Mapping[str, str]) -> int:
    """WATCHME_MEMORY_MB, or its old name WATCHME_MODEL_MEMORY_MB (with a warning)."""
    if env.get("WATCHME_MEMORY_MB"):
        return int(env["WATCHME_MEMORY_MB"])
    if env.get("WATCHME_MODEL_MEMORY_MB"):
        warnings.warn("WATCHME_MODEL_MEMORY_MB is now WATCHME_MEMORY_MB, and limits the whole "
                      "run process, not only the model weights", FutureWarning, stacklevel=2)
        return int(env["WATCHME_MODEL_MEMORY_MB"])
    return DEFAULT_MEMORY_MB


def load_deployment(env: Mapping[str, str]) -> Deployment:
    data_dir = Path(env.get("WATCHME_DATA_DIR") or "data").resolve()
    deployment = Deployment(
        data_dir=data_dir,
        audio_store=env.get("WATCHME_AUDIO_STORE") or str(data_dir / "audio"),
        database_url=env.get("WATCHME_DATABASE_URL") or f"sqlite:///{data_dir / 'watchme.db'}",
        timezone=env.get("WATCHME_TIMEZONE") or "Asia/Tokyo",
        start_date=env.get("WATCHME_START_DATE") or "2025-01-01",
        model_profile=env.get("WATCHME_MODEL_PROFILE") or "standard",
    )
    ZoneInfo(deployment.timezone)  # fail at load with the bad name, not later in a run
    return deployment


def settings_from_env(env: Mapping[str, str]) -> PipelineSettings:
    settings = PipelineSettings(
        language=env.get("WATCHME_LANGUAGE") or "ja",
        prompt_language=env.get("WATCHME_PROMPT_LANGUAGE") or "ja",
        memory_mb=memory_limit_mb(env),
    )
    if settings.prompt_language not in ("ja", "en"):
        raise ValueError(f"WATCHME_PROMPT_LANGUAGE={settings.prompt_language!r}: use ja or en")
    return settings
