"""raw_audio: the day's recordings of one device, registered in audio_files."""

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from watchme_pipeline.assets.common import asset_defaults, per_partition, run_devices
from watchme_pipeline.audio import AudioDecodeError, VadSettings, speech_segments
from watchme_pipeline.partitions import DeviceDay, GroupDay, device_group
from watchme_pipeline.resources import AudioStore, ResultStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import KEY_PREFIX, InvalidIdentifier, day_prefix, parse_key
from watchme_pipeline.stage_runner import decode_recording
from watchme_pipeline.stages import RAW_AUDIO, STATUS_NAMES

VERSION = f"1|{VadSettings()!r}"  # what it registers, the speech segments included


class UnknownDevice(LookupError):
    """A device with no recordings at all in the audio store."""


def current_and_superseded(df: pd.DataFrame) -> pd.Series:
    """Which recordings are superseded: in each slot all but the latest (recorded time, then
    upload time, then key: ``09-00-00`` after ``09-00``, both meaning 09:00)."""
    if not len(df):
        return pd.Series(dtype=bool)
    order = df.sort_values(["slot", "recorded_at", "uploaded_at", "key"])
    return order.duplicated("slot", keep="last").reindex(df.index)


def registered_facts(result_store: ResultStore, day: DeviceDay, vad: VadSettings
                     ) -> dict[str, dict]:
    """What raw_audio found of each file it registered for the day (by key), for files it
    need not read again. Only with the default VAD: other settings find other segments."""
    if vad != VadSettings():
        return {}
    files = result_store.recordings(day.device_id, day.date)
    facts = {}
    for r in files.itertuples():
        if r.uploaded_at is None or r.file_size is None or (r.decodes and
                                                            r.speech_segments is None):
            continue
        facts[r.file_path] = {
            "size": int(r.file_size), "uploaded_at": r.uploaded_at,
            "duration_s": None if pd.isna(r.duration_s) else float(r.duration_s),
            "sample_rate": None if pd.isna(r.sample_rate) else int(r.sample_rate),
            "decodes": bool(r.decodes), "error": None if r.decodes else r.error,
            "segments": r.speech_segments,
        }
    return facts


def find_recordings(audio_store: AudioStore, result_store: ResultStore, day: DeviceDay,
                    tz: dt.tzinfo, log: logging.Logger | Any,
                    vad: VadSettings = VadSettings()) -> tuple[pd.DataFrame, dict[str, str]]:
    """List the day's recordings, decode those not registered before (or uploaded again),
    register them all; return them (slot, key, facts, ``superseded``, ``decoded``) and the
    keys skipped with their reasons. Raises UnknownDevice."""
    objects = list(audio_store.list_objects(day_prefix(day.device_id, day.date)))
    if not objects and not any(
        True for _ in audio_store.list_objects(f"{KEY_PREFIX}/{day.device_id}/")
    ):
        raise UnknownDevice(f"unknown device {day.device_id!r}: no recordings under "
                            f"{KEY_PREFIX}/{day.device_id}/ in {audio_store.describe()}")
    rows, skipped = [], {}
    known = registered_facts(result_store, day, vad)
    for obj in objects:
        try:
            parsed = parse_key(obj.key)
        except InvalidIdentifier as exc:
            skipped[obj.key] = str(exc)
            continue
        row = {"slot": parsed.slot, "key": obj.key, "recorded_at": parsed.recorded_at(tz),
               "uploaded_at": obj.last_modified, "size": obj.size, "duration_s": None,
               "sample_rate": None, "decodes": True, "error": None, "segments": None,
               "decoded": False}
        facts = known.get(obj.key)
        if facts is not None and (facts["size"], facts["uploaded_at"]) == (obj.size,
                                                                            obj.last_modified):
            # Registered before and not uploaded again since: its facts stand (O(new) per
            # run, not O(day): a run after each upload does not decode the day again).
            row.update({k: facts[k] for k in ("duration_s", "sample_rate", "decodes", "error",
                                              "segments")})
            rows.append(row)
            continue
        row["decoded"] = True
        try:
            audio = decode_recording(audio_store, obj.key)
            row.update(duration_s=round(audio.duration_s, 3), sample_rate=audio.source_rate,
                       segments=[list(s) for s in speech_segments(audio.samples, vad)])
        except AudioDecodeError as exc:
            row.update(decodes=False, error=str(exc))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["slot", "key", "recorded_at", "uploaded_at", "size",
                                     "duration_s", "sample_rate", "decodes", "error",
                                     "segments", "decoded"])
    df["superseded"] = current_and_superseded(df).astype(bool)
    df = df.sort_values(["slot", "recorded_at", "uploaded_at", "key"]).reset_index(drop=True)

    result_store.register_recordings([
        {"device_id": day.device_id, "recorded_at": r.recorded_at, "file_path": r.key,
         "local_date": day.date, "time_block": r.slot, "file_size": r.size,
         "uploaded_at": r.uploaded_at,
         "duration_s": r.duration_s, "sample_rate": r.sample_rate, "decodes": r.decodes,
         "speech_segments": r.segments, "superseded": r.superseded}
        for r in df.itertuples()
    ])
    # The status columns say "superseded" too: the dashboard reads them (readers here use
    # the superseded column, through result_store.current_recordings).
    states = result_store.recordings(day.device_id, day.date).set_index("file_path")
    bad = df[~df.decodes & ~df.superseded]
    for stage in STATUS_NAMES:
        result_store.set_status(day.device_id, df[df.superseded].key, stage, "superseded")
        # A recording current again (the later one was deleted) is pending again.
        back = [k for k in df[~df.superseded].key
                if states.loc[k, f"{stage}_status"] == "superseded"]
        result_store.set_status(day.device_id, back, stage, "pending")
        for r in bad.itertuples():
            result_store.set_status(day.device_id, [r.key], stage, "failed", r.error)
    for key, reason in skipped.items():
        log.warning(f"skipped key {key}: {reason}")
    for r in bad.itertuples():
        log.warning(f"{day}: slot {r.slot} failed: {r.error}")
    return df, skipped


def stored_devices(audio_store: AudioStore) -> Callable[[GroupDay, int], list[str]]:
    """The group's devices with recordings of the date in the audio store: one listing of
    the device folders, then one of each of the group's devices' day."""
    def of_group(part: GroupDay, device_groups: int) -> list[str]:
        return [d for d in audio_store.list_folders(KEY_PREFIX)
                if device_group(d, device_groups) == part.group
                and next(iter(audio_store.list_objects(day_prefix(d, part.date))), None)]
    return of_group


def raw_audio_asset(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    tz = partitions_def.get_partitions_def_for_dimension("date").timezone

    @dg.asset(
        **asset_defaults(RAW_AUDIO, partitions_def),
        kinds={"python", "audio", "sql"},  # audio, sql: the configured stores (definitions)
        tags={"stage": "ingest"},
        code_version=VERSION,
        description="The device-day's recordings in the audio store: slot, key, size, "
        "duration, sample rate, whether each decodes and where Silero VAD hears speech; "
        "registered in `audio_files`, one row per file (pending for every stage, failed with "
        "the reason for files that do not decode; of two files in one slot the later is "
        "current, the earlier superseded).",
    )
    def raw_audio(context: dg.AssetExecutionContext, audio_store: AudioStore,
                  result_store: ResultStore, settings: PipelineSettings
                  ) -> dg.MaterializeResult:
        from zoneinfo import ZoneInfo

        def one_day(day):
            try:
                df, skipped = find_recordings(audio_store, result_store, day, ZoneInfo(tz),
                                              context.log)
            except UnknownDevice as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            bad = df[~df.decodes & ~df.superseded]
            return {
                "slots_found": int(df.slot.nunique()) if len(df) else 0,
                "recordings": len(df),
                "recordings_decoded": int(df.decoded.sum()),  # new or uploaded again
                "slots_failed": len(bad),
                "failed_slots": dg.MetadataValue.json(dict(zip(bad.slot, bad.error))),
                "superseded_recordings": dg.MetadataValue.json(list(df[df.superseded].key)),
                "skipped_keys": dg.MetadataValue.json(skipped),
                "audio_minutes": round(float(df.duration_s.fillna(0).sum()) / 60, 2),
                "voiced_minutes": round(sum(e - s for segs in df.segments.dropna()
                                            for s, e in segs) / 16000 / 60, 2),
                "audio_store": audio_store.describe(),
            }

        return per_partition(context, one_day, run_devices(
            partitions_def, settings, stored_devices(audio_store)))

    return raw_audio


