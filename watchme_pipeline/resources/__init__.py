"""Dagster resources: where audio comes from, where results go, models, and the mood scorer."""

from watchme_pipeline.resources.audio_store import (
    AudioStore,
    LocalAudioStore,
    StoredObject,
    audio_store_for,
)
from watchme_pipeline.resources.model_registry import ModelRegistry
from watchme_pipeline.resources.mood_scorer import (
    LocalMoodScorer,
    MoodScorer,
    OpenAIMoodScorer,
    mood_scorer_for,
)
from watchme_pipeline.store import (
    ResultStore,
    ResultStoreError,
    SqlResultStore,
    SupabaseResultStore,
    result_store_for,
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
    "audio_store_for",
    "mood_scorer_for",
    "result_store_for",
]


def __getattr__(name: str):
    # The S3 store loads boto3 and dagster-aws (~100 MB): only when someone asks for it.
    if name in ("S3AudioStore", "TimedS3Resource"):
        from watchme_pipeline.resources import s3_audio_store

        return getattr(s3_audio_store, name)
    raise AttributeError(name)
