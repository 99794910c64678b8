"""raw_audio: the day's recordings of one device, registered in audio_files."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from watchme_pipeline.audio import AudioDecodeError, VadSettings, speech_segments
from watchme_pipeline.partitions import DeviceDay, GroupDay, device_group
from watchme_pipeline.schema import JSON, STATUSES, UTCDateTime, metadata
from watchme_pipeline.slots import KEY_PREFIX, InvalidIdentifier, day_prefix, parse_key
from watchme_pipeline.stage import NotRetried, Stage, StageRun
from watchme_pipeline.stage_runner import decode_recording

if TYPE_CHECKING:
    from watchme_pipeline.resources import AudioStore
    from watchme_pipeline.store import ResultStore

# One row per file (migration 0003): two uploads of one slot that parse to the same time
# (…/09-00/ and …/09-00-00/) are both kept; the later is current, the earlier superseded.
# Each stage that keeps a status per recording adds its `{status}_status` column
# (``add_status_columns``, from the list of stages).
audio_files = sa.Table(
    "audio_files", metadata,
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("file_path", sa.Text, primary_key=True),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("local_date", sa.Text, nullable=False),
    sa.Column("time_block", sa.Text, nullable=False),
    sa.Column("file_size", sa.BigInteger),
    sa.Column("uploaded_at", UTCDateTime),  # the file's LastModified when registered (0005)
    sa.Column("duration_s", sa.Float),
    sa.Column("sample_rate", sa.Integer),
    sa.Column("decodes", sa.Boolean),
    # [[start, end], ...] in 16 kHz samples: Silero VAD's speech, found once by raw_audio
    # (0003; renamed from speech_segments in 0007)
    sa.Column("vad_segments", JSON),
    # The one record of which file of a slot is current: all but the latest are superseded
    # (raw_audio decides; 0004). The status columns say so too, for the dashboard.
    sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime),
    # When audio retention deleted the file (its results stay; privacy/retention.py; 0006).
    sa.Column("audio_deleted_at", UTCDateTime),
    sa.Index("audio_files_day", "device_id", "local_date"),
    sa.Index("audio_files_recorded", "device_id", "recorded_at"),
    sa.Index("audio_files_date", "local_date", "device_id"),  # the alert sensors' reads (0005)
)


def add_status_columns(stages: tuple[Stage, ...]) -> None:
    """Each stage's ``{status}_status`` column (pending until it completes), once."""
    for stage in stages:
        if stage.status and stage.status_column not in audio_files.c:
            audio_files.append_column(sa.Column(stage.status_column, sa.Text, nullable=False,
                                                server_default="pending"))


def status_names() -> tuple[str, ...]:
    """The stages' status prefixes, in the table's (the fleet's) order."""
    return tuple(c.name.removesuffix("_status") for c in audio_files.c
                 if c.name.endswith("_status"))


def check_status(status_name: str, status: str) -> None:
    if status_name not in status_names() or status not in STATUSES:
        raise ValueError(f"unknown stage/status {status_name!r}/{status!r}")


VERSION = f"1|{VadSettings()!r}"  # what it registers, the speech segments included


class UnknownDevice(NotRetried, LookupError):
    """A device with no recordings at all in the audio store."""


class ForgottenDevice(NotRetried, PermissionError):
    """A device whose data was forgotten: its uploads are refused until it is re-admitted."""


def current_and_superseded(df: pd.DataFrame) -> pd.Series:
    """Which recordings are superseded: in each slot all but the latest (recorded time, then
    upload time, then key: ``09-00-00`` after ``09-00``, both meaning 09:00)."""
    if not len(df):
        return pd.Series(dtype=bool)
    order = df.sort_values(["slot", "recorded_at", "uploaded_at", "key"])
    return order.duplicated("slot", keep="last").reindex(df.index)


def registered_facts(files: pd.DataFrame, vad: VadSettings) -> dict[str, dict]:
    """What raw_audio found of each file it registered for the day (``files``, by key), for
    files it need not read again. Only with the default VAD: other settings find other
    segments."""
    if vad != VadSettings():
        return {}
    facts = {}
    for r in files.itertuples():
        if r.uploaded_at is None or r.file_size is None or (r.decodes and
                                                            r.vad_segments is None):
            continue
        facts[r.file_path] = {
            "size": int(r.file_size), "uploaded_at": r.uploaded_at,
            "duration_s": None if pd.isna(r.duration_s) else float(r.duration_s),
            "sample_rate": None if pd.isna(r.sample_rate) else int(r.sample_rate),
            "decodes": bool(r.decodes), "error": None if r.decodes else r.error,
            "segments": r.vad_segments,
        }
    return facts


def find_recordings(audio_store: AudioStore, result_store: ResultStore, day: DeviceDay,
                    tz: dt.tzinfo, log: logging.Logger | Any,
                    vad: VadSettings = VadSettings()) -> tuple[pd.DataFrame, dict[str, str]]:
    """List the day's recordings, decode those not registered before (or uploaded again),
    register them all; return them (slot, key, facts, ``superseded``, ``read``) and the
    keys skipped with their reasons. ``read``: read and decoded in this call (new, or uploaded
    again); ``decodes``: whether the file decodes. Raises UnknownDevice."""
    objects = list(audio_store.list_objects(day_prefix(day.device_id, day.date)))
    # Recordings whose audio retention deleted: their rows and results stay as they are.
    registered = result_store.recordings(day.device_id, day.date)
    audio_deleted = int(registered.audio_deleted_at.notna().sum())
    if not objects and not audio_deleted and not any(
        True for _ in audio_store.list_objects(f"{KEY_PREFIX}/{day.device_id}/")
    ):
        raise UnknownDevice(f"unknown device {day.device_id!r}: no recordings under "
                            f"{KEY_PREFIX}/{day.device_id}/ in {audio_store.describe()}")
    rows, skipped = [], {}
    known = registered_facts(registered, vad)
    for obj in objects:
        try:
            parsed = parse_key(obj.key)
        except InvalidIdentifier as exc:
            skipped[obj.key] = str(exc)
            continue
        row = {"slot": parsed.slot, "key": obj.key, "recorded_at": parsed.recorded_at(tz),
               "uploaded_at": obj.last_modified, "size": obj.size, "duration_s": None,
               "sample_rate": None, "decodes": True, "error": None, "segments": None,
               "read": False}
        facts = known.get(obj.key)
        if facts is not None and (facts["size"], facts["uploaded_at"]) == (obj.size,
                                                                            obj.last_modified):
            # Registered before and not uploaded again since: its facts stand (O(new) per
            # run, not O(day): a run after each upload does not decode the day again).
            row.update({k: facts[k] for k in ("duration_s", "sample_rate", "decodes", "error",
                                              "segments")})
            rows.append(row)
            continue
        row["read"] = True
        try:
            audio = decode_recording(audio_store, obj.key)
            row.update(duration_s=round(audio.duration_s, 3), sample_rate=audio.source_rate,
                       segments=[list(s) for s in speech_segments(audio.samples, vad)])
        except AudioDecodeError as exc:
            row.update(decodes=False, error=str(exc))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["slot", "key", "recorded_at", "uploaded_at", "size",
                                     "duration_s", "sample_rate", "decodes", "error",
                                     "segments", "read"])
    df["superseded"] = current_and_superseded(df).astype(bool)
    df = df.sort_values(["slot", "recorded_at", "uploaded_at", "key"]).reset_index(drop=True)

    result_store.register_recordings([
        {"device_id": day.device_id, "recorded_at": r.recorded_at, "file_path": r.key,
         "local_date": day.date, "time_block": r.slot, "file_size": r.size,
         "uploaded_at": r.uploaded_at,
         "duration_s": r.duration_s, "sample_rate": r.sample_rate, "decodes": r.decodes,
         "vad_segments": r.segments, "superseded": r.superseded}
        for r in df.itertuples()
    ])
    # The status columns say "superseded" too: the dashboard reads them (readers here use
    # the superseded column, through result_store.current_recordings).
    states = result_store.recordings(day.device_id, day.date).set_index("file_path")
    bad = df[~df.decodes & ~df.superseded]
    for name in status_names():
        result_store.set_status(day.device_id, df[df.superseded].key, name, "superseded")
        # A recording current again (the later one was deleted) is pending again.
        back = [k for k in df[~df.superseded].key
                if states.loc[k, f"{name}_status"] == "superseded"]
        result_store.set_status(day.device_id, back, name, "pending")
        for r in bad.itertuples():
            result_store.set_status(day.device_id, [r.key], name, "failed", r.error)
    for key, reason in skipped.items():
        log.warning(f"skipped key {key}: {reason}")
    for r in bad.itertuples():
        log.warning(f"{day}: slot {r.slot} failed: {r.error}")
    df.attrs["audio_deleted"] = audio_deleted
    if not objects and not audio_deleted:  # a finding: a device that stopped uploading
        log.warning(f"{day}: no recordings of {day.device_id} on {day.date} under "
                    f"{day_prefix(day.device_id, day.date)} in {audio_store.describe()}")
    return df, skipped


def recorded_days_near(audio_store: AudioStore, day: DeviceDay, days: int) -> list[str]:
    """The dates within ``days`` of the day on which the device has recordings in the audio
    store: one bounded listing per date (the first key only), whatever the device's history."""
    date = dt.date.fromisoformat(day.date)
    near = [(date + dt.timedelta(days=d)).isoformat() for d in range(-days, days + 1) if d]
    return [d for d in near
            if next(iter(audio_store.list_objects(day_prefix(day.device_id, d))), None)]


def stored_devices(audio_store: AudioStore) -> Callable[[GroupDay, int], list[str]]:
    """The group's devices with recordings of the date in the audio store: one listing of
    the device folders, then one of each of the group's devices' day."""
    def of_group(part: GroupDay, device_groups: int) -> list[str]:
        return [d for d in audio_store.list_folders(KEY_PREFIX)
                if device_group(d, device_groups) == part.group
                and next(iter(audio_store.list_objects(day_prefix(d, part.date))), None)]
    return of_group


def register_day(run: StageRun, day: DeviceDay) -> dict[str, Any]:
    """Find and register the device-day's recordings; the partition's figures."""
    assert run.audio_store is not None
    if run.result_store.forgotten([day.device_id]):
        raise ForgottenDevice(f"device {day.device_id!r} was forgotten: its uploads are "
                              "refused until `python -m watchme_pipeline readmit "
                              f"{day.device_id}`")
    df, skipped = find_recordings(run.audio_store, run.result_store, day,
                                  ZoneInfo(run.timezone), run.log)
    bad = df[~df.decodes & ~df.superseded]
    return {
        "slots_found": int(df.slot.nunique()) if len(df) else 0,
        "recordings": len(df),
        # Of all the day's recordings: decoded + failed = recordings. Read: decoded (or
        # tried) in this run, being new or uploaded again; the others' facts were stored.
        "recordings_decoded": int(df.decodes.sum()),
        "recordings_failed": int((~df.decodes).sum()),
        "recordings_read": int(df.read.sum()),
        # Deleted by audio retention (WATCHME_AUDIO_RETENTION_DAYS): results kept, not redone.
        "recordings_audio_deleted": df.attrs["audio_deleted"],
        "slots_failed": len(bad),
        "failed_slots": dg.MetadataValue.json(dict(zip(bad.slot, bad.error))),
        "superseded_recordings": dg.MetadataValue.json(list(df[df.superseded].key)),
        "skipped_keys": dg.MetadataValue.json(skipped),
        "audio_minutes": round(float(df.duration_s.fillna(0).sum()) / 60, 2),
        "voiced_minutes": round(sum(e - s for segs in df.segments.dropna()
                                    for s, e in segs) / 16000 / 60, 2),
        "audio_store": run.audio_store.describe(),
    }


STAGE = Stage(
    name="raw_audio",
    tables=(audio_files,),
    role="ingest",
    resources=frozenset({"audio_store", "result_store", "settings"}),
    run_day=register_day,
    devices_of_group=lambda run: stored_devices(run.audio_store),
    version=VERSION,
    working_mb=150,  # Silero VAD (torch) and one decoded file
    description="The device-day's recordings in the audio store: slot, key, size, "
    "duration, sample rate, whether each decodes and where Silero VAD hears speech; "
    "registered in `audio_files`, one row per file (pending for every stage, failed with "
    "the reason for files that do not decode; of two files in one slot the later is "
    "current, the earlier superseded).",
)
