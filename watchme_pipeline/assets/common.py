"""Helpers shared by the assets: the partition, decoded audio shared across stages, stages."""


import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from watchme_pipeline.audio import AudioDecodeError, DecodedAudio, decode
from watchme_pipeline.partitions import DeviceDay, device_day_partitions, parse_partition_key
from watchme_pipeline.resources import AudioStore, ResultStore
from watchme_pipeline.resources.model_registry import model_registry_from_env
from watchme_pipeline.settings import load_settings
from watchme_pipeline.slots import InvalidIdentifier

GROUP = "watchme"
# An asset's value for one partition (a DataFrame or a dict record), or {partition key: value}
# in a batched backfill run. Dagster types cannot express that union, hence Any.
PerPartition = Any

# Decoded audio of the current run, shared by raw_audio and the three model stages so each
# file is read and resampled once per run (in-process executor). Bounded: about 2 MB/minute.
_DECODED: OrderedDict[tuple[str, str], DecodedAudio | AudioDecodeError] = OrderedDict()
_DECODED_MAX = 96


def device_days(context: dg.AssetExecutionContext) -> list[tuple[str, DeviceDay]]:
    """The run's partitions as (key, DeviceDay): one for a plain run, several for a backfill
    run that batches partitions (the model stages' BackfillPolicy)."""
    try:
        return [(str(k), parse_partition_key(k)) for k in context.partition_keys]
    except InvalidIdentifier as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def per_partition(context: dg.AssetExecutionContext,
                  compute: Callable[[str, DeviceDay], tuple[Any, dict]]) -> Any:
    """Run ``compute(key, day)`` for each partition of the run; each partition gets its own
    metadata. Returns the value, or a dict by partition key when the run has several (what
    Dagster's IO managers expect for a multi-partition output)."""
    values = {}
    for key, day in device_days(context):
        value, metadata = compute(key, day)
        context.add_asset_metadata(metadata, partition_key=key)
        values[key] = value
    return values if len(values) > 1 else next(iter(values.values()))


def for_partition(value: Any, key: str, context: dg.AssetExecutionContext) -> Any:
    """An upstream input for one partition (inputs of multi-partition runs are dicts)."""
    return value[key] if len(context.partition_keys) > 1 else value


def decoded_audio(run_id: str, audio_store: AudioStore, key: str) -> DecodedAudio:
    """Decode ``key`` once per run; raises AudioDecodeError naming the file."""
    cache_key = (run_id, key)
    if cache_key not in _DECODED:
        if _DECODED and next(reversed(_DECODED))[0] != run_id:
            _DECODED.clear()  # a new run: drop the previous run's audio
        try:
            _DECODED[cache_key] = decode(audio_store.read(key), key)
        except AudioDecodeError as exc:
            _DECODED[cache_key] = exc
        except FileNotFoundError:
            _DECODED[cache_key] = AudioDecodeError(f"{key}: deleted from the audio store")
        while len(_DECODED) > _DECODED_MAX:
            _DECODED.popitem(last=False)
    value = _DECODED[cache_key]
    if isinstance(value, AudioDecodeError):
        raise value
    return value


def preview(df: pd.DataFrame, columns: list[str], rows: int = 48) -> dg.MetadataValue:
    cols = [c for c in columns if c in df.columns]
    return dg.MetadataValue.md(df[cols].head(rows).to_markdown(index=False) if len(df) else "-")


def run_stage(
    context: dg.AssetExecutionContext,
    day: DeviceDay,
    *,
    stage: str,
    raw_audio: pd.DataFrame,
    audio_store: AudioStore,
    result_store: ResultStore,
    recompute: bool,
    compute: Callable[[dict[str, DecodedAudio]], list[dict]],
    table: str,
) -> dict[str, Any]:
    """The pending-only loop every model stage shares.

    Slots whose ``{stage}_status`` is completed are skipped unless ``recompute``; the rest are
    marked processing, computed together (batched), written in one transaction and marked
    completed. A recording that cannot be decoded fails its own slot with the reason.
    """
    status_col = f"{stage}_status"
    current = raw_audio[~raw_audio.superseded]
    states = result_store.read("audio_files", day.device_id, day.date).set_index("file_path")
    todo = [
        r for r in current.itertuples()
        if recompute or states.loc[r.key, status_col] != "completed"
    ]
    skipped = len(current) - len(todo)
    audios: dict[str, DecodedAudio] = {}
    failed: dict[str, str] = {}
    for r in todo:
        try:
            audios[r.slot] = decoded_audio(context.run_id, audio_store, r.key)
        except AudioDecodeError as exc:
            failed[r.slot] = str(exc)
            result_store.set_status(day.device_id, [r.recorded_at], stage, "failed", str(exc))
    by_slot = {r.slot: r.recorded_at for r in todo}
    started = [by_slot[s] for s in audios]
    result_store.set_status(day.device_id, started, stage, "processing")
    t0 = time.perf_counter()
    try:
        rows = compute(audios) if audios else []
    except Exception as exc:
        result_store.set_status(day.device_id, started, stage, "failed",
                                f"{stage}: {type(exc).__name__}: {exc}")
        raise
    seconds = time.perf_counter() - t0
    result_store.replace_partition(table, day.device_id, day.date, rows, only_keys=True)
    result_store.set_status(day.device_id, started, stage, "completed")
    for slot, reason in failed.items():
        context.log.warning(f"{day}: slot {slot} failed: {reason}")
    audio_min = sum(a.duration_s for a in audios.values()) / 60
    return {
        "slots_found": len(current),
        "slots_processed": len(audios),
        "slots_skipped": skipped,
        "slots_failed": len(failed),
        "failed_slots": dg.MetadataValue.json(failed),
        "audio_minutes": round(audio_min, 2),
        "stage_seconds": round(seconds, 2),
        "seconds_per_audio_minute": round(seconds / audio_min, 2) if audio_min else 0.0,
    }


# Transient faults (S3, the database, an LLM) are retried with backoff; faults of the input
# raise dg.Failure(allow_retries=False) or fail their own slot, so they are never retried.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)
# A backfill batches up to 10 device-days per run, so each run loads each model once for all
# of them. Every asset carries the same policy: assets with different policies would be split
# into separate runs. (Multi-partition ranges keep one dimension fixed, so a batch is up to
# 10 dates of one device.)
BATCHED_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=10)
# Re-materialize when any upstream partition changes, for every date: the default eager()
# only looks at the latest day, which would ignore late uploads.
ON_UPSTREAM_CHANGE = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)
ASSET_DEFAULTS: dict[str, Any] = {
    "partitions_def": device_day_partitions,
    "group_name": GROUP,
    "owners": ["team:watchme"],
    "backfill_policy": BATCHED_BACKFILL,
    "retry_policy": TRANSIENT_RETRY,
}


def stage_code_version(kind: str, settings: object) -> str:
    """Provenance: the model (id, or a local checkpoint's checksum) and the settings that
    change results. After a model change the UI marks partitions computed with the old one,
    and a backfill of exactly those (with ``recompute: true``) brings them up to date."""
    app = load_settings()
    registry = model_registry_from_env(os.environ, app.model_profile, str(app.model_cache))
    return f"{registry.model_id(kind)}|{settings}"
