"""vibe_prompt: the day's LLM prompt from the 48 slots → vibe_whisper_prompt."""

import dataclasses
import datetime as dt

import dagster as dg

from watchme_pipeline.assets.common import (
    ON_UPSTREAM_CHANGE,
    asset_defaults,
    per_partition,
    registered_devices,
    run_devices,
)
from watchme_pipeline.day_tables import slot_summaries
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.prompt import PROMPT_VERSION, build_prompt
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stages import (
    EMOTION_SCORES,
    EVENT_SCORES,
    RAW_AUDIO,
    TRANSCRIPTS,
    VIBE_PROMPT,
)


def write_prompt(store: ResultStore, day: DeviceDay, language: str) -> dict:
    """Build the day's prompt from the stage tables and store it with the slot summaries it
    was built from (mood_chart reads both back); return the stored record."""
    slots = slot_summaries(store, day)
    record = {
        "device_id": day.device_id, "date": day.date,
        "prompt": build_prompt(day.device_id, day.date, slots, language),
        "processed_files": sum(1 for s in slots if s.recorded),
        "missing_files": [s.slot for s in slots if not s.recorded],
        "slots": [dataclasses.asdict(s) for s in slots],
        "generated_at": dt.datetime.now(dt.UTC),
    }
    store.replace_partition(VIBE_PROMPT.table, day.device_id, day.date, [record])
    return record


def vibe_prompt_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_defaults(VIBE_PROMPT, partitions_def),
        deps=[s.asset for s in (RAW_AUDIO, TRANSCRIPTS, EVENT_SCORES, EMOTION_SCORES)],
        kinds={"python", "sql"},
        tags={"stage": "aggregate"},
        automation_condition=ON_UPSTREAM_CHANGE,
        code_version=PROMPT_VERSION,
        description="The day's LLM prompt: one line per slot `[HH-MM] text` with top sound "
        "events and dominant emotion, `(発話なし)` for recorded slots without speech and "
        "missing slots written out. Stored in `vibe_whisper_prompt` with the slot summaries "
        "it was built from.",
    )
    def vibe_prompt(context: dg.AssetExecutionContext, result_store: ResultStore,
                    settings: PipelineSettings) -> dg.MaterializeResult:
        def one_day(day):
            record = write_prompt(result_store, day, settings.prompt_language)
            return {
                "processed_slots": record["processed_files"],
                "missing_slots": len(record["missing_files"]),
                "failed_slots": sum(1 for s in record["slots"] if s["failed"]),
                "missing": dg.MetadataValue.json(record["missing_files"]),
                # Its length only: the prompt quotes people's words (vibe_whisper_prompt has it).
                "prompt_characters": len(record["prompt"]),
            }

        return per_partition(context, one_day, run_devices(
            partitions_def, settings, registered_devices(result_store)))

    return vibe_prompt
