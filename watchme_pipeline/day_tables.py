"""A device-day's slots read back from the stage tables: what vibe_prompt builds on.

The result store is the only state shared between steps (and runs, processes or pods): each
asset writes its tables and the assets after it read what they need, by the table names in
``stages.py``.
"""

from __future__ import annotations

import pandas as pd

from watchme_pipeline.models.emotion import LABEL_COLUMNS
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources.result_store import ResultStore
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stages import EMOTION_SCORES, EVENT_SCORES, TRANSCRIPTS


def slot_summaries(store: ResultStore, day: DeviceDay) -> list[SlotSummary]:
    """One SlotSummary per slot of the day, from audio_files and the three stage tables."""
    current = {r.time_block: r for r in
               store.current_recordings(day.device_id, day.date).itertuples()}
    text_rows = store.stage_rows(TRANSCRIPTS, day.device_id, day.date)
    event_rows = store.stage_rows(EVENT_SCORES, day.device_id, day.date)
    emotion_rows = store.stage_rows(EMOTION_SCORES, day.device_id, day.date)
    text = dict(zip(text_rows.time_block, text_rows.transcription))
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
        ))
    return out
