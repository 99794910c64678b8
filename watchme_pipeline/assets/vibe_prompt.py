"""vibe_prompt: the day's LLM prompt from the 48 slots → vibe_whisper_prompt."""


import dataclasses
import datetime as dt

import dagster as dg

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    ON_UPSTREAM_CHANGE,
    PerPartition,
    for_partition,
    per_partition,
)
from watchme_pipeline.day_tables import slot_summaries
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.prompt import build_prompt
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.settings import load_settings


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("vibe_prompt"),
    kinds={"python", "sql"},
    tags={"stage": "aggregate"},
    automation_condition=ON_UPSTREAM_CHANGE,
    description="The day's LLM prompt: one line per slot `[HH-MM] text` with top sound events "
    "and dominant emotion, `(発話なし)` for recorded slots without speech and missing slots "
    "written out. Stored in `vibe_whisper_prompt`.",
)
def vibe_prompt(
    context: dg.AssetExecutionContext,
    raw_audio: PerPartition,
    transcripts: PerPartition,
    event_scores: PerPartition,
    emotion_scores: PerPartition,
    result_store: ResultStore,
) -> PerPartition:
    language = load_settings().prompt_language

    def one_day(key, day):
        slots = slot_summaries(*(for_partition(v, key, context) for v in
                                 (raw_audio, transcripts, event_scores, emotion_scores)))
        prompt = build_prompt(day.device_id, day.date, slots, language)
        processed = [s.slot for s in slots if s.recorded]
        missing = [s.slot for s in slots if not s.recorded]
        result_store.replace_partition("vibe_whisper_prompt", day.device_id, day.date, [{
            "device_id": day.device_id, "date": day.date, "prompt": prompt,
            "processed_files": len(processed), "missing_files": missing,
            "generated_at": dt.datetime.now(dt.UTC),
        }])
        meta = {
            "processed_slots": len(processed),
            "missing_slots": len(missing),
            "failed_slots": sum(1 for s in slots if s.failed),
            "missing": dg.MetadataValue.json(missing),
            "prompt": dg.MetadataValue.md(f"```\n{prompt}\n```"),
        }
        return {"device_id": day.device_id, "date": day.date, "prompt": prompt,
                "slots": [dataclasses.asdict(s) for s in slots]}, meta

    return per_partition(context, one_day)
