"""What every asset shares: the run's device-days, per-partition metadata, the policies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.partitions import (
    DeviceDay,
    GroupDay,
    device_group,
    device_group_count,
    parse_partition_key,
)
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import InvalidIdentifier, validate_device_id
from watchme_pipeline.stage import Stage
from watchme_pipeline.store import ResultStore

ASSET_GROUP = "watchme"  # the Dagster asset group of every stage


@dataclass(frozen=True)
class RunDevices:
    """How a run's partitions become device-days. Per-device partitions are device-days
    already; a (date, group) partition is the devices ``named`` for the run (run config:
    settings.devices) that are in the group, or, when none are named, ``of_group`` of it."""

    device_groups: int = 0
    named: tuple[str, ...] = ()
    of_group: Callable[[GroupDay, int], list[str]] | None = None  # (partition, N) -> devices


def registered_devices(result_store: ResultStore) -> Callable[[GroupDay, int], list[str]]:
    """The group's devices with recordings registered for the date (what raw_audio found)."""
    def of_group(part: GroupDay, device_groups: int) -> list[str]:
        found = result_store.devices_recording([part.date]).device_id
        return sorted(d for d in set(found) if device_group(d, device_groups) == part.group)
    return of_group


def run_devices(partitions_def: dg.PartitionsDefinition, settings: PipelineSettings,
                of_group: Callable[[GroupDay, int], list[str]]) -> RunDevices:
    """The run's RunDevices: ``of_group`` finds a group's devices when the run names none."""
    return RunDevices(device_group_count(partitions_def), tuple(settings.devices), of_group)


def device_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
                devices: RunDevices = RunDevices()) -> list[tuple[str, DeviceDay]]:
    """The run's device-days with their partition keys: one for a plain run, several for a
    backfill run that batches partitions (BATCHED_BACKFILL) or a group partition."""
    try:
        parts = [(str(k), parse_partition_key(k, devices.device_groups))
                 for k in context.partition_keys]
        named = [validate_device_id(d) for d in devices.named]
        days, used = [], set()
        for key, part in parts:
            if isinstance(part, DeviceDay):
                days.append((key, part))
                continue
            if named:
                members = [d for d in named
                           if device_group(d, devices.device_groups) == part.group]
            else:
                members = (devices.of_group(part, devices.device_groups) if devices.of_group
                           else [])
            used.update(members)
            days += [(key, DeviceDay(d, part.date)) for d in sorted(members)]
    except InvalidIdentifier as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if stray := sorted(set(devices.named) - used) if devices.device_groups else []:
        groups = {d: device_group(d, devices.device_groups) for d in stray}
        raise dg.Failure(description="devices named in settings.devices are in no partition "
                         "of this run: " + ", ".join(f"{d} is in group {g}"
                                                     for d, g in groups.items()),
                         allow_retries=False)
    return days


def merge_figures(per_device: list[dict[str, Any]]) -> dict[str, Any]:
    """One group partition's metadata from its devices': counts summed, ``average_*`` averaged,
    ``peak_*`` the largest, flags true when true for all; strings kept when all agree.
    Per-slot detail (JSON, images, text) stays per device in the tables: a group's would grow
    with its devices."""
    merged: dict[str, Any] = {}
    for name in per_device[0] if per_device else []:
        values = [figures[name] for figures in per_device if figures.get(name) is not None]
        if not values:
            continue
        if all(isinstance(v, bool) for v in values):
            merged[name] = all(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            merged[name] = (round(sum(values) / len(values), 2) if name.startswith("average_")
                            else max(values) if name.startswith("peak_")
                            else round(sum(values), 2))
        elif all(isinstance(v, str) for v in values) and len(set(values)) == 1:
            merged[name] = values[0]
    return merged


def per_partition(context: dg.AssetExecutionContext,
                  compute: Callable[[DeviceDay], dict[str, Any]],
                  devices: RunDevices = RunDevices()) -> dg.MaterializeResult:
    """Run ``compute(day)`` for each device-day of the run; each partition gets the metadata
    it returns (a group partition: its devices' merged, and which devices). The rows are
    already in the result store: nothing else is returned, and the metadata holds counts and
    figures only (no transcript, prompt or per-slot preview: they are people's days, and
    Dagster's event log would keep them without bound)."""
    by_key: dict[str, list[tuple[DeviceDay, dict[str, Any]]]] = {
        str(k): [] for k in context.partition_keys}
    for key, day in device_days(context, devices):
        by_key[key].append((day, compute(day)))
    for key, results in by_key.items():
        if not devices.device_groups:
            for _, figures in results:
                context.add_asset_metadata(figures, partition_key=key)
            continue
        figures = merge_figures([f for _, f in results])
        figures["devices"] = len(results)
        figures["device_ids"] = dg.MetadataValue.json(sorted(d.device_id for d, _ in results))
        context.add_asset_metadata(figures, partition_key=key)
    return dg.MaterializeResult()


# Transient faults (S3, the database, an LLM) are retried with backoff; faults of the input
# raise dg.Failure(allow_retries=False) or fail their own slot, so they are never retried.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)
# A backfill batches up to 10 device-days per run, so each run loads each model once for all
# of them. Every asset carries the same policy: assets with different policies would be split
# into separate runs. (Multi-partition ranges keep one dimension fixed, so a batch is up to
# 10 dates of one device.)
BATCHED_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=10)
# A group partition is already many device-days (all of a group's devices): one a run.
GROUP_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
# Re-materialize when any upstream partition changes, for the dates a late upload can still
# reach: the default eager() only looks at the latest day (late uploads ignored), and no
# window at all makes every evaluation walk all dates x devices. Older days are redone by the
# sensor's runs (the whole graph) or from the UI.
LATE_UPLOAD_LOOKBACK = dt.timedelta(days=7)
ON_UPSTREAM_CHANGE = dg.AutomationCondition.eager().replace(
    dg.AutomationCondition.in_latest_time_window(),
    dg.AutomationCondition.in_latest_time_window(lookback_delta=LATE_UPLOAD_LOOKBACK),
)


def asset_defaults(stage: Stage, partitions_def: dg.PartitionsDefinition) -> dict[str, Any]:
    """What every asset of the graph is declared with."""
    return {
        "name": stage.name,
        "partitions_def": partitions_def,
        "group_name": ASSET_GROUP,
        "owners": ["team:watchme"],
        "backfill_policy": (GROUP_BACKFILL if device_group_count(partitions_def)
                            else BATCHED_BACKFILL),
        "retry_policy": TRANSIENT_RETRY,
        "op_tags": pod_tags(stage),
    }
