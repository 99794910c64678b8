"""raw_audio: the day's recordings of one device, registered in audio_files."""

import dagster as dg
import pandas as pd

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    PerPartition,
    decoded_audio,
    per_partition,
    preview,
)
from watchme_pipeline.audio import AudioDecodeError
from watchme_pipeline.day_tables import RECORDING_COLUMNS, recordings
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources import AudioStore, ResultStore
from watchme_pipeline.schema import STAGES
from watchme_pipeline.settings import load_settings
from watchme_pipeline.slots import KEY_PREFIX, InvalidIdentifier, day_prefix, parse_key


def find_recordings(context: dg.AssetExecutionContext, day: DeviceDay, audio_store: AudioStore,
                    result_store: ResultStore) -> tuple[pd.DataFrame, dict]:
    tz = load_settings().tz
    objects = list(audio_store.list_objects(day_prefix(day.device_id, day.date)))
    if not objects and not any(
        True for _ in audio_store.list_objects(f"{KEY_PREFIX}/{day.device_id}/")
    ):
        raise dg.Failure(
            description=f"unknown device {day.device_id!r}: no recordings under "
            f"{KEY_PREFIX}/{day.device_id}/ in {audio_store.describe()}",
            allow_retries=False,
        )
    rows, skipped = [], {}
    for obj in objects:
        try:
            parsed = parse_key(obj.key)
        except InvalidIdentifier as exc:
            skipped[obj.key] = str(exc)
            continue
        row = {"slot": parsed.slot, "key": obj.key, "recorded_at": parsed.recorded_at(tz),
               "size": obj.size, "duration_s": None, "sample_rate": None, "decodes": True,
               "error": None}
        try:
            audio = decoded_audio(context.run_id, audio_store, obj.key)
            row.update(duration_s=round(audio.duration_s, 3), sample_rate=audio.source_rate)
        except AudioDecodeError as exc:
            row.update(decodes=False, error=str(exc))
        rows.append(row)
    df = pd.DataFrame(rows, columns=RECORDING_COLUMNS[:-1])
    # Two files in one slot: both are kept; the latest one gives the slot's results.
    df = df.sort_values(["slot", "recorded_at"]).reset_index(drop=True)
    df["superseded"] = df.duplicated("slot", keep="last") if len(df) else pd.Series(dtype=bool)

    result_store.register_recordings([
        {"device_id": day.device_id, "recorded_at": r.recorded_at, "file_path": r.key,
         "local_date": day.date, "time_block": r.slot, "file_size": r.size,
         "duration_s": r.duration_s, "sample_rate": r.sample_rate, "decodes": r.decodes}
        for r in df.itertuples()
    ])
    bad = df[~df.decodes & ~df.superseded]
    for stage in STAGES:
        result_store.set_status(day.device_id, df[df.superseded].recorded_at, stage, "superseded")
        for r in bad.itertuples():
            result_store.set_status(day.device_id, [r.recorded_at], stage, "failed", r.error)
    for key, reason in skipped.items():
        context.log.warning(f"skipped key {key}: {reason}")
    for r in bad.itertuples():
        context.log.warning(f"{day}: slot {r.slot} failed: {r.error}")
    metadata = {
        "slots_found": int(df.slot.nunique()) if len(df) else 0,
        "recordings": len(df),
        "slots_failed": len(bad),
        "failed_slots": dg.MetadataValue.json({r.slot: r.error for r in bad.itertuples()}),
        "superseded_recordings": dg.MetadataValue.json(list(df[df.superseded].key)),
        "skipped_keys": dg.MetadataValue.json(skipped),
        "audio_minutes": round(float(df.duration_s.fillna(0).sum()) / 60, 2),
        "audio_store": audio_store.describe(),
        "preview": preview(df, ["slot", "key", "duration_s", "sample_rate", "decodes", "error"]),
    }
    return recordings(result_store, day), metadata


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("raw_audio"),
    kinds={"python", "audio", "sql"},  # audio, sql: the configured stores (definitions)
    tags={"stage": "ingest"},
    description="The device-day's recordings in the audio store: slot, key, size, duration, "
    "sample rate and whether each decodes; registered in `audio_files` (pending for every "
    "stage, failed with the reason for files that do not decode).",
)
def raw_audio(
    context: dg.AssetExecutionContext, audio_store: AudioStore, result_store: ResultStore
) -> PerPartition:
    return per_partition(
        context, lambda key, day: find_recordings(context, day, audio_store, result_store)
    )
