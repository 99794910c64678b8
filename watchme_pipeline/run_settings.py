"""What a run may change: ``PipelineSettings``, a resource whose every field can be set for one
run in the Launchpad (``resources: {settings: {config: {...}}}``); the deployment's values
(``settings.run_settings``) are its defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from watchme_pipeline.models.kinds import MODEL_KINDS

DEFAULT_MEMORY_MB = 2000


class PipelineSettings(dg.ConfigurableResource):
    """What a run may change: every field can be set for one run in the Launchpad
    (``resources: {settings: {config: {...}}}``); the deployment's values are the defaults."""

    language: str = Field(default="ja", description="Transcription language, a Whisper code, "
                          "or 'auto' to detect it once per slot.")
    prompt_language: str = Field(default="ja", description="Language of the LLM prompt (ja, en).")
    others_speech: str = Field(default="keep", description="Others' speech where the device has "
                               "a wearer profile: keep (transcribed, marked as others') or "
                               "redact (never transcribed, stored or sent to an LLM; counted "
                               "and timed only).")
    recompute: bool = Field(default=False, description="Redo slots already completed by this "
                            "run's maker (a slot whose row another model or other settings "
                            "made is always redone).")
    memory_mb: int = Field(default=DEFAULT_MEMORY_MB, description="What the run process may "
                           "hold, in MB: models are released and batches shrunk to stay under.")
    whisper_batch_size: int = Field(default=0, description="Whisper windows decoded together "
                                    "(openai-whisper when greedy; its beam search takes one "
                                    "at a time); 0: as many as the memory limit allows, at "
                                    "most 4.")
    event_batch_size: int = Field(default=0, description="AST windows per forward pass; 0: as "
                                  "many as the memory limit allows, at most 1 (CPU gains "
                                  "nothing from more).")
    emotion_batch_size: int = Field(default=0, description="wav2vec2 chunks per forward pass; "
                                    "0: as many as the memory limit allows, at most 1.")
    speaker_batch_size: int = Field(default=0, description="Turns embedded per forward pass "
                                    "of the speaker encoder; 0: as many as the memory limit "
                                    "allows, at most 16.")
    devices: list[str] = Field(default=[], description="Group mode (WATCHME_DEVICE_GROUPS): "
                               "only these devices of the partition's group, e.g. to redo one "
                               "device-day; empty: every device of the group that recorded "
                               "that day. The sensors set it to the devices with new uploads.")

    @property
    def whisper_language(self) -> str | None:
        return None if self.language == "auto" else self.language

    def batch_size(self, kind: str) -> int:
        return getattr(self, MODEL_KINDS[kind].batch_setting)


def setting_source(run_config: Mapping[str, Any], field: str, variable: str) -> str:
    """Where a run's setting came from, for a message that names it: this run's config (the
    Launchpad) or the deployment's ``variable`` (or its default)."""
    given = run_config.get("resources", {}).get("settings", {}).get("config", {}) or {}
    return (f"this run's config, resources.settings.config.{field}" if field in given
            else variable)


def launch_settings(settings: PipelineSettings) -> dg.PartialResource:
    """The settings resource Dagster gets: each field changeable for one run, the others
    keep the deployment's values. (A constructed resource would not do: run config that
    sets one field resets the others to the class defaults.)"""
    return PipelineSettings.configure_at_launch(**settings.model_dump())
