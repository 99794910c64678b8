"""Dagster resources: where audio comes from, where results go, models, and the mood scorer."""

from watchme_pipeline.resources.audio_store import (
    AudioStore,
    LocalAudioStore,
    S3AudioStore,
    StoredObject,
    TimedS3Resource,
    audio_store_from_url,
)
from watchme_pipeline.resources.model_registry import ModelRegistry
from watchme_pipeline.resources.mood_scorer import (
    LocalMoodScorer,
    MoodScorer,
    OpenAIMoodScorer,
    mood_scorer_from_env,
)
from watchme_pipeline.resources.result_store import (
    ResultStore,
    ResultStoreError,
    SqlResultStore,
    SupabaseResultStore,
    result_store_from_env,
)

__all__ = [
    "AudioStore",
    "LocalAudioStore",
    "LocalMoodScorer",
    "ModelRegistry",
    "MoodScorer",
    "OpenAIMoodScorer",
    "ResultStore",
    "ResultStoreError",
    "SqlResultStore",
    "SupabaseResultStore",
    "S3AudioStore",
    "StoredObject",
    "TimedS3Resource",
    "audio_store_from_url",
    "mood_scorer_from_env",
    "result_store_from_env",
]
