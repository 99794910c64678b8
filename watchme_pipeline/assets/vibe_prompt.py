"""vibe_prompt: the day's LLM prompt from the 48 slots → vibe_whisper_prompt."""


import dataclasses
import datetime as dt

import dagster as dg
import pandas as pd

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    ON_UPSTREAM_CHANGE,
    current_recordings,
    for_partition,
    per_partition,
)
from watchme_pipeline.assets.emotion_scores import LABEL_COLUMNS
from watchme_pipeline.prompt import build_prompt
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.settings import load_settings
from watchme_pipeline.slots import SLOTS


def slot_summaries(raw_audio: pd.DataFrame, transcripts: pd.DataFrame,
                   event_scores: pd.DataFrame, emotion_scores: pd.DataFrame,
                   ) -> list[SlotSummary]:
    """One SlotSummary per slot of the day, from the stage tables."""
    current = {r.slot: r for r in current_recordings(raw_audio).itertuples()}
    text = dict(zip(transcripts.time_block, transcripts.transcription))
    events = dict(zip(event_scores.time_block, event_scores.top_events))
    emotions = {}
    for r in emotion_scores.itertuples():
        probs = {label: getattr(r, col) for label, col in LABEL_COLUMNS.items()}
        if all(v is not None and not pd.isna(v) for v in probs.values()):
            emotions[r.time_block] = {k: float(v) for k, v in probs.items()}
    out = []
    for slot in SLOTS:
        rec = current.get(slot)
        out.append(SlotSummary(
            slot=slot,
            recorded=bool(rec is not None and rec.decodes),
            failed=bool(rec is not None and not rec.decodes),
            transcript=text.get(slot) or None,
            events=list(events.get(slot) or []),
            emotion=emotions.get(slot),
        ))
    return out


@dg.asset(
    **ASSET_DEFAULTS,
    kinds={"python", "sql"},
    tags={"stage": "aggregate"},
    automation_condition=ON_UPSTREAM_CHANGE,
    description="The day's LLM prompt: one line per slot `[HH-MM] text` with top sound events "
    "and dominant emotion, `(発話なし)` for recorded slots without speech and missing slots "
    "written out. Stored in `vibe_whisper_prompt`.",
)
def vibe_prompt(
    context: dg.AssetExecutionContext,
    raw_audio: pd.DataFrame,
    transcripts: pd.DataFrame,
    event_scores: pd.DataFrame,
    emotion_scores: pd.DataFrame,
    result_store: ResultStore,
) -> dict:
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
