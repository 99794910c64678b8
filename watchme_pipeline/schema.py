"""The result tables, compatible with the tables the WatchMe dashboard reads (see the brief).

The SQL files in ``migrations/`` create them on every backend; these definitions are what the
code queries with, and ``tests/test_result_store.py`` proves the two agree on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from watchme_pipeline.stages import STATUS_NAMES

metadata = sa.MetaData()
JSON = sa.JSON().with_variant(JSONB(), "postgresql")

STATUSES = ("pending", "processing", "completed", "failed", "superseded")


class UTCDateTime(sa.types.TypeDecorator):
    """timestamptz on PostgreSQL; on SQLite stored as naive UTC and read back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def _key(*names: str) -> list[sa.Column]:
    return [sa.Column(n, sa.Text, primary_key=True) for n in names]


# One row per file (migration 0003): two uploads of one slot that parse to the same time
# (…/09-00/ and …/09-00-00/) are both kept; the later is current, the earlier superseded.
audio_files = sa.Table(
    "audio_files", metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("file_path", sa.Text, primary_key=True),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("local_date", sa.Text, nullable=False),
    sa.Column("time_block", sa.Text, nullable=False),
    sa.Column("file_size", sa.BigInteger),
    sa.Column("uploaded_at", UTCDateTime),  # the file's LastModified when registered (0005)
    sa.Column("duration_s", sa.Float),
    sa.Column("sample_rate", sa.Integer),
    sa.Column("decodes", sa.Boolean),
    # [[start, end], ...] in 16 kHz samples: Silero VAD's speech, found once by raw_audio (0003)
    sa.Column("speech_segments", JSON),
    # The one record of which file of a slot is current: all but the latest are superseded
    # (raw_audio decides; 0004). The status columns say so too, for the dashboard.
    sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
    *[sa.Column(f"{s}_status", sa.Text, nullable=False, server_default="pending")
      for s in STATUS_NAMES],
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime),
    sa.Index("audio_files_day", "device_id", "local_date"),
    sa.Index("audio_files_recorded", "device_id", "recorded_at"),
    sa.Index("audio_files_date", "local_date", "device_id"),  # the alert sensors' reads (0005)
)

vibe_whisper = sa.Table(
    "vibe_whisper", metadata, *_key("device_id", "date", "time_block"),
    sa.Column("transcription", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("maker", sa.Text),  # model and the settings that shaped the row (0004)
    sa.Column("processed_at", UTCDateTime),
)

behavior_yamnet = sa.Table(
    "behavior_yamnet", metadata, *_key("device_id", "date", "time_block"),
    sa.Column("events", JSON),
    sa.Column("top_events", JSON),
    sa.Column("model", sa.Text),
    sa.Column("maker", sa.Text),  # model and the settings that shaped the row (0004)
    sa.Column("processed_at", UTCDateTime),
)

behavior_summary = sa.Table(
    "behavior_summary", metadata, *_key("device_id", "date"),
    sa.Column("summary_ranking", JSON),
    sa.Column("time_blocks", JSON),
    sa.Column("processed_at", UTCDateTime),
)

emotion_superb = sa.Table(
    "emotion_superb", metadata, *_key("device_id", "date", "time_block"),
    sa.Column("neutral", sa.Float),
    sa.Column("happy", sa.Float),
    sa.Column("angry", sa.Float),
    sa.Column("sad", sa.Float),
    sa.Column("voiced_seconds", sa.Float),
    sa.Column("model", sa.Text),
    sa.Column("maker", sa.Text),  # model and the settings that shaped the row (0004)
    sa.Column("processed_at", UTCDateTime),
)

emotion_opensmile_summary = sa.Table(
    "emotion_opensmile_summary", metadata, *_key("device_id", "date"),
    sa.Column("emotion_graph", JSON),
    sa.Column("processed_at", UTCDateTime),
)

vibe_whisper_prompt = sa.Table(
    "vibe_whisper_prompt", metadata, *_key("device_id", "date"),
    sa.Column("prompt", sa.Text),
    sa.Column("processed_files", sa.Integer),
    sa.Column("missing_files", JSON),
    sa.Column("generated_at", UTCDateTime),
    sa.Column("slots", JSON),  # what the prompt was built from, for mood_chart (0003)
)

vibe_whisper_summary = sa.Table(
    "vibe_whisper_summary", metadata, *_key("device_id", "date"),
    sa.Column("vibe_scores", JSON),
    sa.Column("average_score", sa.Float),
    sa.Column("positive_hours", sa.Float),
    sa.Column("negative_hours", sa.Float),
    sa.Column("neutral_hours", sa.Float),
    sa.Column("insights", sa.Text),
    sa.Column("vibe_changes", JSON),
    sa.Column("chart_path", sa.Text),
    sa.Column("scorer", sa.Text),
    sa.Column("processed_at", UTCDateTime),
    sa.Index("vibe_whisper_summary_date", "date"),  # charts of a date, fleet-wide (0005)
)


run_failures = sa.Table(
    "run_failures", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("job_name", sa.Text),
    sa.Column("partition", sa.Text),
    sa.Column("steps", sa.Text),
    sa.Column("error_class", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("failed_at", UTCDateTime),
    sa.Index("run_failures_failed_at", "failed_at"),  # failures since a cursor (0005)
)

# The upload ledger of the queue sensor (0005): notified uploads not yet registered.
uploads = sa.Table(
    "uploads", metadata,
    sa.Column("file_path", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("local_date", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("sequencer", sa.Text, nullable=False, server_default=""),
    sa.Column("noted_at", UTCDateTime, nullable=False),
    sa.Column("requested_at", UTCDateTime),
    sa.Column("run_key", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("uploads_pending", "requested_at", "noted_at"),
)

TABLES = {t.name: t for t in metadata.sorted_tables}
