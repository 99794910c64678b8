"""event_scores: AudioSet sound events per slot (AST) → behavior_yamnet, behavior_summary."""

import datetime as dt

import dagster as dg

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    PerPartition,
    for_partition,
    per_partition,
    preview,
    run_stage,
    stage_code_version,
)
from watchme_pipeline.assets.transcripts import StageConfig
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.models.events import EventSettings, classify_events, daily_summary
from watchme_pipeline.resources import AudioStore, ModelRegistry, ResultStore


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("event_scores"),
    kinds={"pytorch", "sql"},
    tags={"stage": "model"},
    pool="models",
    code_version=stage_code_version("events", EventSettings()),
    description="Sound events per slot: AST over 10.24 s windows, sigmoid scores for the 527 "
    "AudioSet classes, top-k per window (`behavior_yamnet.events`) and per slot, and the day's "
    "ranking (`behavior_summary`).",
)
def event_scores(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    raw_audio: PerPartition,
    audio_store: AudioStore,
    result_store: ResultStore,
    model_registry: ModelRegistry,
) -> PerPartition:
    settings = EventSettings()

    def one_day(key, day):
        def compute(audios):
            loaded = model_registry.get("events")
            results = classify_events(loaded.model, loaded.extractor, audios, settings)
            now = dt.datetime.now(dt.UTC)
            return [{"device_id": day.device_id, "date": day.date, "time_block": slot,
                     "events": r.windows, "top_events": r.top, "model": loaded.model_id,
                     "processed_at": now}
                    for slot, r in results.items()]

        meta = run_stage(context, day, stage="behavior_features",
                         raw_audio=for_partition(raw_audio, key, context),
                         audio_store=audio_store, result_store=result_store,
                         recompute=config.recompute, compute=compute, table="behavior_yamnet")
        df = result_store.read("behavior_yamnet", day.device_id, day.date)
        ranking, time_blocks = daily_summary(dict(zip(df.time_block, df.top_events)))
        result_store.replace_partition("behavior_summary", day.device_id, day.date, [{
            "device_id": day.device_id, "date": day.date, "summary_ranking": ranking,
            "time_blocks": time_blocks, "processed_at": dt.datetime.now(dt.UTC),
        }])
        df["top_event"] = [t[0]["label"] if t else None for t in df.top_events]
        meta["top_events_of_day"] = dg.MetadataValue.json(ranking[:10])
        meta["model"] = model_registry.model_id("events")
        meta["preview"] = preview(df, ["time_block", "top_event"])
        return df, meta

    return per_partition(context, one_day)
