"""Mood scorers: every one returns the JSON the old GPT scorer was asked for."""

from __future__ import annotations

import dagster as dg

from watchme_pipeline.scoring import SlotSummary, local_reply


class MoodScorer(dg.ConfigurableResource):
    """Returns the raw reply (a JSON string or dict); the asset validates it."""

    def name(self) -> str:
        raise NotImplementedError

    def score_day(self, prompt: str, slots: list[SlotSummary], log=None) -> str | dict:
        raise NotImplementedError


class LocalMoodScorer(MoodScorer):
    """The documented deterministic rule of ``watchme_pipeline.scoring``; no network."""

    min_change: int = 40

    def name(self) -> str:
        return "local"

    def score_day(self, prompt: str, slots: list[SlotSummary], log=None) -> dict:
        return local_reply(slots, self.min_change)
