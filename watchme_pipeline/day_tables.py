"""A device-day read back from the result store, in the shapes the assets pass on.

The result store is the only state shared between steps (and runs, processes or pods): every
asset writes its tables, and its downstream assets read them back through
``ResultStoreIOManager`` using these functions.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources.result_store import ResultStore
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.slots import SLOTS

RECORDING_COLUMNS = ["slot", "key", "recorded_at", "size", "duration_s", "sample_rate",
                     "decodes", "error", "superseded"]
# SUPERB-ER label -> column of emotion_superb
LABEL_COLUMNS = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"}


def recordings(store: ResultStore, day: DeviceDay) -> pd.DataFrame:
    """raw_audio's value: one row per recording of the day, the latest of a slot last."""
    files = store.read("audio_files", day.device_id, day.date)
    df = pd.DataFrame({
        "slot": files.time_block, "key": files.file_path, "recorded_at": files.recorded_at,
        "size": files.file_size, "duration_s": files.duration_s,
        "sample_rate": files.sample_rate, "decodes": files.decodes.astype(bool),
        "error": files.error, "superseded": files.transcriptions_status == "superseded",
    }, columns=RECORDING_COLUMNS)
    return df.sort_values(["slot", "recorded_at"]).reset_index(drop=True)


def slot_summaries(recs: pd.DataFrame, transcripts: pd.DataFrame, event_scores: pd.DataFrame,
                   emotion_scores: pd.DataFrame) -> list[SlotSummary]:
    """One SlotSummary per slot of the day, from the stage tables."""
    current = {r.slot: r for r in recs[~recs.superseded].itertuples()}
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


def day_prompt(store: ResultStore, day: DeviceDay) -> dict:
    """vibe_prompt's value: the stored prompt and the slot summaries it was built from."""
    rows = store.read("vibe_whisper_prompt", day.device_id, day.date)
    slots = slot_summaries(
        recordings(store, day), store.read("vibe_whisper", day.device_id, day.date),
        store.read("behavior_yamnet", day.device_id, day.date),
        store.read("emotion_superb", day.device_id, day.date),
    )
    return {"device_id": day.device_id, "date": day.date,
            "prompt": rows.prompt.iloc[0] if len(rows) else "",
            "slots": [dataclasses.asdict(s) for s in slots]}


def load_asset_value(store: ResultStore, asset: str, day: DeviceDay):
    """What ``asset`` produced for ``day``, read back from its tables."""
    if asset == "raw_audio":
        return recordings(store, day)
    if asset == "vibe_prompt":
        return day_prompt(store, day)
    table = {"transcripts": "vibe_whisper", "event_scores": "behavior_yamnet",
             "emotion_scores": "emotion_superb", "mood_chart": "vibe_whisper_summary"}[asset]
    df = store.read(table, day.device_id, day.date)
    if asset == "mood_chart":
        return df.iloc[0].to_dict() if len(df) else {}
    return df
