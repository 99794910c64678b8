"""speakers: whose voice each turn of speech is → speaker_turns, speech_segments,
speaker_profiles.

Per slot, the speech the VAD found is split into turns at short pauses and each turn's voice
embedded (``models/speaker.py``); per device-day, the wearer's profile is fitted from the
device's turns of the days before (``speaker_profile.py``; an enrollment recording,
``files/{device_id}/enrollment/*.wav``, joins it) and each turn attributed: ``wearer`` or
``other``, or ``unknown`` until the device has MIN_DAYS days with speech.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, VadSettings, decode
from watchme_pipeline.models.speaker import (
    EMBEDDING_SIZE,
    SpeakerSettings,
    Turn,
    find_turns,
    unpack,
)
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.schema import JSON, UTCDateTime, key_columns, metadata, slot_row_columns
from watchme_pipeline.slots import enrollment_prefix, is_enrollment_key
from watchme_pipeline.speaker_profile import (
    HISTORY_DAYS,
    MAX_TURNS,
    MIN_DAYS,
    REFIT_DAYS,
    RULE,
    History,
    Profile,
    build_profile,
)
from watchme_pipeline.stage import DayWork, Stage, Voices

WEARER, OTHER, UNKNOWN = "wearer", "other", "unknown"  # speech_segments.speaker

speaker_turns = sa.Table("speaker_turns", metadata, *slot_row_columns(
    sa.Column("turns", JSON),  # [{start_s, end_s, level_db, embedding}]
    sa.Column("speech_seconds", sa.Float),
    # Who spoke, summed from speech_segments (null until the device has a profile).
    sa.Column("wearer_seconds", sa.Float),
    sa.Column("other_seconds", sa.Float)))

speech_segments = sa.Table(
    "speech_segments", metadata, *key_columns("device_id", "date", "time_block"),
    sa.Column("start_s", sa.Float, primary_key=True),
    sa.Column("end_s", sa.Float),
    sa.Column("speaker", sa.Text),
    sa.Column("confidence", sa.Float),
    sa.Column("maker", sa.Text),
    sa.Column("processed_at", UTCDateTime),
)

speaker_profiles = sa.Table(
    "speaker_profiles", metadata, *key_columns("device_id", "version"),
    sa.Column("rule", sa.Text),
    # What makes profiles interchangeable: the rule, the turns' maker, the enrollment files.
    sa.Column("history_key", sa.Text),
    sa.Column("date", sa.Text),  # the day it was fitted for (an export holds it there)
    sa.Column("first_date", sa.Text),  # the first day of its history
    sa.Column("params", JSON),
    sa.Column("made_at", UTCDateTime),
    sa.Index("speaker_profiles_history", "device_id", "history_key"),
)

def turns_of_slots(model: LoadedModel, audios: dict[str, DecodedAudio],
                   settings: SpeakerSettings) -> dict[str, dict]:
    out = {}
    for slot, audio in audios.items():
        turns = find_turns(model.model, audio, settings)
        out[slot] = {"turns": [t.stored() for t in turns],
                     "speech_seconds": round(sum(t.end - t.start for t in turns)
                                             / SAMPLE_RATE, 2)}
    return out


def history_dates(date: str) -> list[str]:
    day = dt.date.fromisoformat(date)
    return [(day - dt.timedelta(days=n)).isoformat() for n in range(HISTORY_DAYS, 0, -1)]


def enrollment_keys(work: DayWork) -> list[str]:
    if work.audio_store is None:
        return []
    return sorted(o.key for o in work.audio_store.list_objects(
        enrollment_prefix(work.day.device_id)) if is_enrollment_key(o.key))


def enrollment_turns(work: DayWork, keys: list[str]) -> list[Turn]:
    """The turns of the device's enrollment recordings (a file that does not decode is
    named in the log and left out)."""
    found = []
    for key in keys:
        try:
            audio = decode(work.audio_store.read(key), key)
        except (ValueError, FileNotFoundError) as exc:
            work.log.warning(f"{work.day}: enrollment recording left out: {exc}")
            continue
        found += find_turns(work.model().model, audio, SpeakerSettings())
    return found


def history_of(rows: pd.DataFrame, enrolled: list[Turn]) -> History:
    """The turns of the earlier days' rows, the most recent MAX_TURNS, and the enrollment's."""
    stored = [(r.date, t) for r in rows.sort_values(["date", "time_block"]).itertuples()
              for t in (r.turns or [])][-MAX_TURNS:]
    return History(
        embeddings=np.array([unpack(t["embedding"]) for _, t in stored]
                            + [t.embedding for t in enrolled]).reshape(-1, EMBEDDING_SIZE),
        levels_db=np.array([t["level_db"] for _, t in stored] + [t.level_db for t in enrolled]),
        days=np.array([d for d, _ in stored] + ["enrollment"] * len(enrolled)),
        enrolled=np.array([False] * len(stored) + [True] * len(enrolled)))


def profile_for(work: DayWork) -> tuple[Profile | None, str]:
    """The wearer's profile for the day: one fitted for it or for one of the REFIT_DAYS before
    it from turns made alike (the same encoder and settings, the same enrollment files), or a
    new one, from the HISTORY_DAYS before it once MIN_DAYS of them have speech; with an
    enrollment recording, from it, those days and the day itself at once."""
    store, day = work.result_store, work.day
    keys = enrollment_keys(work)
    makers = sorted(set(work.rows.maker.dropna()))  # how this run's turns are made
    history_key = hashlib.sha256(repr((RULE, makers, keys)).encode()).hexdigest()[:16]
    date = dt.date.fromisoformat(day.date)
    stored = store.select_rows(speaker_profiles.name, [
        ("eq", "device_id", day.device_id), ("eq", "history_key", history_key),
        ("gte", "date", (date - dt.timedelta(days=REFIT_DAYS - 1)).isoformat()),
        ("lt", "date", (date + dt.timedelta(days=1)).isoformat())]).sort_values("date")
    if len(stored):
        return Profile(stored.params.iloc[-1]), "stored"
    dates = history_dates(day.date) + ([day.date] if keys else [])
    made = store.read_days(speaker_turns.name, day.device_id, dates,
                           columns=("date", "maker", "speech_seconds"))
    spoken = made[made.maker.isin(makers) & (made.speech_seconds > 0)]
    earlier = spoken.date[spoken.date != day.date].nunique()
    if not keys and earlier < MIN_DAYS:
        return None, f"no profile ({earlier} of {MIN_DAYS} days)"
    rows = store.read_days(speaker_turns.name, day.device_id, sorted(set(spoken.date)))
    profile = build_profile(history_of(rows[rows.maker.isin(makers)],
                                       enrollment_turns(work, keys)))
    if profile is None:
        return None, "no profile (one voice, or too few turns)"
    store.replace_rows(speaker_profiles.name, [{
        "device_id": day.device_id, "version": profile.version, "rule": RULE,
        "history_key": history_key, "date": day.date, "first_date": dates[0],
        "params": profile.params, "made_at": dt.datetime.now(dt.UTC)}])
    return profile, "fitted"


def attribute_day(work: DayWork) -> dict[str, Any]:
    """Who spoke each turn of the day → speech_segments; figures (counts and seconds only)."""
    profile, how = profile_for(work)
    tag = f"{RULE} profile {profile.version}" if profile else how
    now, segments = dt.datetime.now(dt.UTC), []
    for r in work.rows.itertuples():
        turns = r.turns or []
        if not turns:
            continue
        if profile:
            p = profile.wearer_probability(np.array([unpack(t["embedding"]) for t in turns]),
                                           np.array([t["level_db"] for t in turns]))
        for i, t in enumerate(turns):
            speaker = (WEARER if p[i] >= 0.5 else OTHER) if profile else UNKNOWN
            segments.append({
                "device_id": work.day.device_id, "date": work.day.date,
                "time_block": r.time_block, "start_s": t["start_s"], "end_s": t["end_s"],
                "speaker": speaker, "confidence": (round(float(max(p[i], 1 - p[i])), 4)
                                                   if profile else None),
                "maker": f"{r.maker} | {tag}", "processed_at": now})
    store = work.result_store
    store.replace_day(speech_segments.name, work.day.device_id, work.day.date, segments)
    by_slot: dict[str, dict[str, float]] = {}
    for x in segments:
        slot = by_slot.setdefault(x["time_block"], {WEARER: 0.0, OTHER: 0.0})
        if x["speaker"] != UNKNOWN:
            slot[x["speaker"]] += x["end_s"] - x["start_s"]
    changed = []  # only the slots whose seconds moved: a row holds the slot's embeddings
    for r in work.rows.itertuples():
        new = ((round(by_slot.get(r.time_block, {}).get(WEARER, 0.0), 2),
                round(by_slot.get(r.time_block, {}).get(OTHER, 0.0), 2)) if profile
               else (None, None))
        old = tuple(None if pd.isna(v) else v for v in (r.wearer_seconds, r.other_seconds))
        if new != old:
            changed.append({**{c: getattr(r, c) for c in speaker_turns.c.keys()},
                            "wearer_seconds": new[0], "other_seconds": new[1]})
    if changed:
        store.replace_rows(speaker_turns.name, changed)
    seconds = {s: round(sum(x["end_s"] - x["start_s"] for x in segments
                            if x["speaker"] == s), 1) for s in (WEARER, OTHER, UNKNOWN)}
    return {"profile": profile.version if profile else "none", "profile_from": how,
            "turns": len(segments), **{f"{s}_seconds": v for s, v in seconds.items()}}


def voices_of_day(store: Any, day: DeviceDay) -> Voices:
    """The day's speech_segments as each slot's turns by speaker, for the stages that tell
    the wearer from others; not attributed when the device had no profile."""
    rows = store.read(speech_segments.name, day.device_id, day.date)
    if not len(rows) or (rows.speaker == UNKNOWN).all():
        return Voices(maker="speakers: none")
    turns: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for r in rows.sort_values(["time_block", "start_s"]).itertuples():
        turns.setdefault(r.time_block, {WEARER: [], OTHER: []})[r.speaker].append(
            (int(round(r.start_s * SAMPLE_RATE)), int(round(r.end_s * SAMPLE_RATE))))
    return Voices(maker="speakers: " + rows.maker.iloc[0].rsplit(" | ", 1)[-1],
                  attributed=True, turns=turns)


def who_spoke(row) -> str:
    """The demo's column: seconds of the wearer's and others' speech ("?" without a
    profile), or "-" without speech."""
    if not row.turns:
        return "-"
    if row.wearer_seconds is None or pd.isna(row.wearer_seconds):
        return f"?{row.speech_seconds:.0f}s"
    return f"W{row.wearer_seconds:.0f} O{row.other_seconds:.0f}"


STAGE = Stage(
    name="speakers",
    tables=(speaker_turns, speech_segments, speaker_profiles),
    model_kind="speaker",
    resources=frozenset({"result_store", "settings", "audio_store"}),
    slot_view=("who spoke", 14, who_spoke),
    model_settings=lambda settings: SpeakerSettings(),
    compute=turns_of_slots,
    after_day=attribute_day,
    version=f"1|{VadSettings()!r}",
    description="Whose voice each turn of speech is. The VAD's segments are split into turns "
    "at 150 ms pauses and each turn's voice embedded by resemblyzer's GE2E encoder "
    "(`speaker_turns`); the wearer's profile is fitted per device from the turns of the "
    f"{HISTORY_DAYS} days before (the wearer is the nearest voice: loud turns seed it, the "
    "same voice said softly joins) and versioned (`speaker_profiles`); each turn is then "
    f"`wearer` or `other`, or `unknown` until the device has {MIN_DAYS} days with speech "
    "(`speech_segments`). An enrollment recording (`files/{device_id}/enrollment/*.wav`) "
    "seeds the profile and makes one from the first day.",
)
