"""vibe_prompt: the day's LLM prompt from the 48 slots → vibe_whisper_prompt."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from watchme_pipeline.models.emotion import LABEL_COLUMNS
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.prompt import PROMPT_VERSION, build_prompt, is_empty_day
from watchme_pipeline.schema import JSON, UTCDateTime, key_columns, metadata
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stage import Stage, StageRun
from watchme_pipeline.stages.emotion_scores import emotion_superb
from watchme_pipeline.stages.event_scores import behavior_yamnet
from watchme_pipeline.stages.transcripts import vibe_whisper

if TYPE_CHECKING:
    from watchme_pipeline.store import ResultStore

vibe_whisper_prompt = sa.Table(
    "vibe_whisper_prompt", metadata, *key_columns("device_id", "date"),
    sa.Column("prompt", sa.Text),
    sa.Column("processed_files", sa.Integer),
    sa.Column("missing_files", JSON),
    sa.Column("generated_at", UTCDateTime),
    sa.Column("slots", JSON),  # what the prompt was built from, for mood_chart (0003)
)


def slot_summaries(store: ResultStore, day: DeviceDay) -> list[SlotSummary]:
    """One SlotSummary per slot of the day, from audio_files and the three stage tables (the
    result store is the only state steps share, so any executor gives the same prompt)."""
    current = {r.time_block: r for r in
               store.current_recordings(day.device_id, day.date).itertuples()}
    text_rows = store.read(vibe_whisper.name, day.device_id, day.date)
    event_rows = store.read(behavior_yamnet.name, day.device_id, day.date)
    emotion_rows = store.read(emotion_superb.name, day.device_id, day.date)
    text = dict(zip(text_rows.time_block, text_rows.transcription))
    lines = dict(zip(text_rows.time_block, text_rows.lines))
    events = dict(zip(event_rows.time_block, event_rows.top_events))
    emotions = {}
    for r in emotion_rows.itertuples():
        probs = {label: getattr(r, col) for label, col in LABEL_COLUMNS.items()}
        if all(v is not None and not pd.isna(v) for v in probs.values()):
            emotions[r.time_block] = {k: float(v) for k, v in probs.items()}
    out = []
    for slot in SLOTS:
        rec = current.get(slot)
        decodes = rec is not None and rec.decodes
        out.append(SlotSummary(
            slot=slot,
            recorded=decodes,
            failed=rec is not None and not decodes,
            transcript=text.get(slot) or None,
            events=list(events.get(slot) or []),
            emotion=emotions.get(slot),
            lines=[x for x in lines.get(slot) or [] if isinstance(x, dict)],
        ))
    return out


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
    store.replace_partition(vibe_whisper_prompt.name, day.device_id, day.date, [record])
    return record


def prompt_day(run: StageRun, day: DeviceDay) -> dict[str, Any]:
    record = write_prompt(run.result_store, day, run.settings.prompt_language)
    return {
        "processed_slots": record["processed_files"],
        "missing_slots": len(record["missing_files"]),
        "failed_slots": sum(1 for s in record["slots"] if s["failed"]),
        "missing": dg.MetadataValue.json(record["missing_files"]),
        # Its length only: the prompt quotes people's words (vibe_whisper_prompt has it).
        "prompt_characters": len(record["prompt"]),
        "empty_day": is_empty_day([SlotSummary(**s) for s in record["slots"]]),
    }


STAGE = Stage(
    name="vibe_prompt",
    tables=(vibe_whisper_prompt,),
    deps=("raw_audio", "speakers", "transcripts", "event_scores", "emotion_scores"),
    run_day=prompt_day,
    automatic=True,
    version=PROMPT_VERSION,
    description="The day's LLM prompt: one line per slot `[HH-MM] text` with top sound "
    "events and dominant emotion (the wearer's, where the device has a voice profile: then "
    "each speaker's words are marked `本人:` or `周りの人:` / `wearer:` or `others:`), "
    "`(発話なし)` for recorded slots without speech and "
    "missing slots written out; a day without recordings is one line saying so. Stored in "
    "`vibe_whisper_prompt` with the slot summaries it was built from.",
)
