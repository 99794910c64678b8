"""Deployment settings from the environment, with embedded defaults that need no accounts.

| variable | default | what it chooses |
|---|---|---|
| WATCHME_DATA_DIR | ./data | where the embedded defaults keep their files |
| WATCHME_AUDIO_STORE | {data}/audio | the audio store: a local folder |
| WATCHME_DATABASE_URL | sqlite:///{data}/watchme.db | the result store |
| WATCHME_TIMEZONE | Asia/Tokyo | the devices' local day |
| WATCHME_START_DATE | 2025-01-01 | the first daily partition |
| WATCHME_MODEL_PROFILE | standard | standard checkpoints by id, or tiny random-weight models |
| WATCHME_WHISPER_MODEL / _EVENT_MODEL / _EMOTION_MODEL | see ModelRegistry | id or path |
| WATCHME_MODEL_MEMORY_MB | 1536 | the model memory budget |
| WATCHME_WHISPER_ENGINE | faster-whisper | or openai-whisper (batched) |
| WATCHME_LANGUAGE | ja | transcription language (a Whisper code; 'auto' detects) |
| WATCHME_PROMPT_LANGUAGE | ja | language of the LLM prompt's instructions (ja, en) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    audio_store: str
    database_url: str
    timezone: str
    start_date: str
    model_profile: str
    language: str
    prompt_language: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def model_cache(self) -> Path:
        return self.data_dir / "models"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(env.get("WATCHME_DATA_DIR") or "data").resolve()
    settings = Settings(
        data_dir=data_dir,
        audio_store=env.get("WATCHME_AUDIO_STORE") or str(data_dir / "audio"),
        database_url=env.get("WATCHME_DATABASE_URL") or f"sqlite:///{data_dir / 'watchme.db'}",
        timezone=env.get("WATCHME_TIMEZONE") or "Asia/Tokyo",
        start_date=env.get("WATCHME_START_DATE") or "2025-01-01",
        model_profile=env.get("WATCHME_MODEL_PROFILE") or "standard",
        language=env.get("WATCHME_LANGUAGE") or "ja",
        prompt_language=env.get("WATCHME_PROMPT_LANGUAGE") or "ja",
    )
    if settings.prompt_language not in ("ja", "en"):
        raise ValueError(f"WATCHME_PROMPT_LANGUAGE={settings.prompt_language!r}: use ja or en")
    ZoneInfo(settings.timezone)  # fail at load with the bad name, not later in a run
    return settings
