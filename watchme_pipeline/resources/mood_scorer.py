"""Mood scorers: every one returns the JSON the old GPT scorer was asked for."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from watchme_pipeline.scoring import SlotSummary, local_reply
from watchme_pipeline.settings import Deployment


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


SYSTEM_PROMPT = (
    "You score the mood of a person's day from wearable-recorder transcripts. "
    "Reply with one JSON object only, exactly in the format the user asks for."
)


class OpenAIMoodScorer(MoodScorer):
    """Any OpenAI-compatible chat-completions server (OpenAI, Azure OpenAI's v1 endpoint,
    vLLM, Ollama) through the ``openai`` package. HTTP 429 and 5xx are retried by the client
    with exponential backoff; a reply that does not validate is retried by the asset."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: the openai package reads OPENAI_BASE_URL itself
    api_key: str = "unused"  # give it as dg.EnvVar("OPENAI_API_KEY")
    timeout_s: float = 120.0
    max_retries: int = 4
    temperature: float = 0.0

    _client: Any = PrivateAttr(default=None)
    _json_mode: bool = PrivateAttr(default=True)

    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(api_key=self.api_key, base_url=self.base_url,
                                  timeout=self.timeout_s, max_retries=self.max_retries)
        return self._client

    def score_day(self, prompt: str, slots: list[SlotSummary], log=None) -> str:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": prompt}],
            "temperature": self.temperature,
        }
        if self._json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.BadRequestError as exc:
            if not self._json_mode or "response_format" not in str(exc):
                raise
            # The server does not support JSON mode: ask again without it.
            if log:
                log.info("server refused response_format=json_object; asking without it")
            self._json_mode = False
            kwargs.pop("response_format")
            response = self.client.chat.completions.create(**kwargs)
        return response.choices[0].message.content or ""


def mood_scorer_for(deployment: Deployment) -> MoodScorer:
    """WATCHME_MOOD_SCORER=local (default) or openai (WATCHME_LLM_MODEL, OPENAI_*)."""
    if deployment.mood_scorer == "local":
        return LocalMoodScorer()
    return OpenAIMoodScorer(
        model=deployment.llm_model,
        base_url=deployment.openai_base_url,
        api_key=dg.EnvVar("OPENAI_API_KEY") if deployment.openai_key_set else "unused",
    )
