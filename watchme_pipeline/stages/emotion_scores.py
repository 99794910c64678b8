"""emotion_scores: speech-emotion probabilities per slot (wav2vec2 SUPERB-ER)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from watchme_pipeline.audio import DecodedAudio, VadSettings
from watchme_pipeline.models.emotion import LABEL_COLUMNS, EmotionSettings, classify_emotion
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.schema import JSON, UTCDateTime, key_columns, metadata, slot_row_columns
from watchme_pipeline.scoring import emotion_name
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stage import Stage
from watchme_pipeline.stages.speakers import OTHER, WEARER, voices_of_day

emotion_superb = sa.Table("emotion_superb", metadata, *slot_row_columns(
    *[sa.Column(c, sa.Float) for c in LABEL_COLUMNS.values()],
    sa.Column("voiced_seconds", sa.Float),
    # Where the device has a wearer profile (speakers): the speech scored is the wearer's;
    # both null where speech is not attributed (all of it was scored).
    sa.Column("wearer_seconds", sa.Float),
    sa.Column("other_seconds", sa.Float)))

emotion_opensmile_summary = sa.Table(
    "emotion_opensmile_summary", metadata, *key_columns("device_id", "date"),
    sa.Column("emotion_graph", JSON),
    sa.Column("processed_at", UTCDateTime),
)


def classify_slots(model: LoadedModel, audios: dict[str, DecodedAudio],
                   settings: EmotionSettings) -> dict[str, dict]:
    """Per slot the four probabilities over the speech it hears (the wearer's where speech is
    attributed; None without it: a slot where only others spoke has no mood of the wearer)."""
    heard = {slot: a.only(WEARER) for slot, a in audios.items()}
    out = {}
    for slot, probs in classify_emotion(model.model, model.extractor, heard, settings).items():
        audio = audios[slot]
        attributed = audio.speakers is not None
        out[slot] = {"voiced_seconds": round(heard[slot].voiced_seconds, 2),
                     "wearer_seconds": (round(audio.speaker_seconds(WEARER), 2) if attributed
                                        else None),
                     "other_seconds": (round(audio.speaker_seconds(OTHER), 2) if attributed
                                       else None),
                     **{c: (probs or {}).get(label) for label, c in LABEL_COLUMNS.items()}}
    return out


def dominant_emotion(row) -> str:
    """The slot's most likely emotion, or "-" without speech."""
    probs = {label: getattr(row, col) for label, col in LABEL_COLUMNS.items()}
    if any(p is None or pd.isna(p) for p in probs.values()):
        return "-"
    return emotion_name(max(probs, key=probs.get))


def emotion_graph(rows: pd.DataFrame) -> list[dict]:
    """The day's series for emotion_opensmile_summary: 48 points, null where no row."""
    cols = list(LABEL_COLUMNS.values())
    by_slot = {r.time_block: r for r in rows.itertuples()}
    return [{"time": slot, **{c: (getattr(by_slot[slot], c) if slot in by_slot else None)
                              for c in cols}} for slot in SLOTS]


def summarize(store, day, rows) -> dict:
    store.replace_partition(emotion_opensmile_summary.name, day.device_id, day.date, [{
        "device_id": day.device_id, "date": day.date, "emotion_graph": emotion_graph(rows),
        "processed_at": dt.datetime.now(dt.UTC),
    }])
    cols = list(LABEL_COLUMNS.values())
    voiced = rows[cols].notna().all(axis=1) if len(rows) else pd.Series(dtype=bool)
    return {"slots_with_voice": int(voiced.sum())}


STAGE = Stage(
    name="emotion_scores",
    tables=(emotion_superb, emotion_opensmile_summary),
    model_kind="emotion",
    status="emotion_features",
    deps=("raw_audio", "speakers"),
    voices=voices_of_day,
    slot_view=("emotion", 7, dominant_emotion),
    model_settings=lambda settings: EmotionSettings(),
    compute=classify_slots,
    summarize=summarize,
    # 2: the wearer's speech only, where the device has a profile (speakers).
    version=f"2|{VadSettings()!r}",
    description="Emotion probabilities (neutral/happy/angry/sad) per slot from a wav2vec2 "
    "classifier, in 5 s chunks, over the wearer's turns where the device has a voice "
    "profile (speakers; the seconds of wearer and other speech beside them), else over all "
    "the speech the VAD found; null for slots without it (a slot where only others spoke "
    "is not the wearer's mood). "
    "Per slot in `emotion_superb`, the day's series in `emotion_opensmile_summary`.",
)
