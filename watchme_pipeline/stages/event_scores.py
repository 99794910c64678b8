"""event_scores: AudioSet sound events per slot (AST) → behavior_yamnet, behavior_summary."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import sqlalchemy as sa

from watchme_pipeline.audio import DecodedAudio
from watchme_pipeline.models.events import EventSettings, classify_events, daily_summary
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.schema import JSON, UTCDateTime, key_columns, metadata, slot_row_columns
from watchme_pipeline.stage import Stage

behavior_yamnet = sa.Table("behavior_yamnet", metadata, *slot_row_columns(
    sa.Column("events", JSON), sa.Column("top_events", JSON)))

behavior_summary = sa.Table(
    "behavior_summary", metadata, *key_columns("device_id", "date"),
    sa.Column("summary_ranking", JSON),
    sa.Column("time_blocks", JSON),
    sa.Column("processed_at", UTCDateTime),
)


def classify_slots(model: LoadedModel, audios: dict[str, DecodedAudio],
                   settings: EventSettings) -> dict[str, dict]:
    return {slot: {"events": r.windows, "top_events": r.top} for slot, r in
            classify_events(model.model, model.extractor, audios, settings).items()}


def summarize(store, day, rows) -> dict:
    """The day's ranking → behavior_summary."""
    ranking, time_blocks = daily_summary(dict(zip(rows.time_block, rows.top_events)))
    store.replace_partition(behavior_summary.name, day.device_id, day.date, [{
        "device_id": day.device_id, "date": day.date, "summary_ranking": ranking,
        "time_blocks": time_blocks, "processed_at": dt.datetime.now(dt.UTC),
    }])
    return {"top_events_of_day": dg.MetadataValue.json(ranking[:10])}


STAGE = Stage(
    name="event_scores",
    tables=(behavior_yamnet, behavior_summary),
    model_kind="events",
    status="behavior_features",
    slot_view=("top event", 24, lambda row: row.top_events[0]["label"] if row.top_events
               else "-"),
    model_settings=lambda settings: EventSettings(),
    compute=classify_slots,
    summarize=summarize,
    version="1",
    description="Sound events per slot: AST over 10.24 s windows, sigmoid scores for the 527 "
    "AudioSet classes, top-k per window (`behavior_yamnet.events`) and per slot, and the day's "
    "ranking (`behavior_summary`).",
)
