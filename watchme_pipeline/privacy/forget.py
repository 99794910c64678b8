"""Forget a device: everything the pipeline keeps of it, in one step, resumable and audited.

Places, in order: the audit row first (from then on the device's uploads are refused), its
audio, charts and enrollment under the store's prefixes, its rows in every table (the upload
ledger and the failure log included), then Dagster's records of it: in per-device mode its
dynamic partition key, its partitions' materialization and check history, and its runs; in
group mode the runs whose config names only this device are deleted and the others (shared
with other devices) are listed. Every step deletes what is left, so a forget killed at any
point is finished by running it again (the unfinished audit row is resumed, its counts kept).
The audit row holds counts per place, never content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from watchme_pipeline.partitions import DEVICE, devices_partitions
from watchme_pipeline.slots import KEY_PREFIX, validate_device_id
from watchme_pipeline.stages.mood_chart import CHART_PREFIX
from watchme_pipeline.store.persons import FORGET

if TYPE_CHECKING:
    from watchme_pipeline.resources import AudioStore
    from watchme_pipeline.store import ResultStore

FORGET_JOB = "forget_device"  # the job's name (privacy/jobs.py): its runs' config names a device
DEVICES = devices_partitions.name  # the dynamic partitions of the device dimension
RUN_PAGE = 500  # run records read at a time, in group mode


class ForgetRefused(ValueError):
    """The confirmation does not match the device: nothing was deleted."""


@dataclass
class ForgetReport:
    request_id: str
    device_id: str
    resumed: bool
    counts: dict[str, int] = field(default_factory=dict)  # what this run deleted, per place
    kept: list[str] = field(default_factory=list)  # what remains, and why

    def lines(self) -> list[str]:
        return ([f"forget {self.device_id} (request {self.request_id}"
                 + (", resumed" if self.resumed else "") + ")"]
                + [f"  {place}: {n} deleted" for place, n in self.counts.items()]
                + [f"  kept: {why}" for why in self.kept])


def delete_objects(audio_store: AudioStore, device_id: str,
                   record: Callable[[dict[str, int]], None]) -> None:
    """The device's recordings (enrollment included) and charts; each place's count is
    recorded before its deletions start (a resumed forget finds fewer, and keeps the first)."""
    for prefix in (f"{KEY_PREFIX}/{device_id}/", f"{CHART_PREFIX}/{device_id}/"):
        keys = [o.key for o in audio_store.list_objects(prefix)]
        record({f"store {prefix}": len(keys)})
        for key in keys:
            audio_store.delete(key)


def device_partition_keys(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                          device_id: str) -> list[str]:
    """The asset's materialized partitions of the device (per-device keys: date|device)."""
    return sorted(k for k in instance.get_materialized_partitions(asset_key)
                  if str(k).endswith(f"|{device_id}"))


def earlier_forget_runs(instance: dg.DagsterInstance, device_id: str) -> set[str]:
    """Finished forget_device runs for this device: their config names it (the audit row in
    data_requests is the record that stays). A run still going is not touched."""
    runs = instance.get_run_records(filters=dg.RunsFilter(
        job_name=FORGET_JOB, statuses=[dg.DagsterRunStatus.SUCCESS,
                                            dg.DagsterRunStatus.FAILURE,
                                            dg.DagsterRunStatus.CANCELED]))
    return {r.dagster_run.run_id for r in runs
            if (r.dagster_run.run_config or {}).get("ops", {}).get("forget", {}).get(
                "config", {}).get("device_id") == device_id}


def delete_check_executions(instance: dg.DagsterInstance, run_ids: list[str],
                            kept: list[str]) -> int:
    """The asset-check executions of these runs. Dagster's ``delete_run`` leaves them (they
    name the partition, so the device), and it offers no call to delete them: on its SQL
    event log (SQLite, PostgreSQL) they are deleted from its table by run id; elsewhere they
    are listed as kept."""
    if not run_ids:
        return 0
    storage = instance.event_log_storage
    try:
        from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

        table = AssetCheckExecutionsTable
        with storage.index_connection() as conn:  # type: ignore[attr-defined]
            done = conn.execute(table.delete().where(table.c.run_id.in_(run_ids))).rowcount
        return int(done or 0)
    except (AttributeError, ImportError):
        kept.append(f"asset check executions of {len(run_ids)} runs (this event log offers "
                    "no way to delete them)")
        return 0


def forget_in_dagster(instance: dg.DagsterInstance, device_id: str,
                      asset_keys: Sequence[dg.AssetKey], device_groups: int
                      ) -> tuple[dict[str, int], list[str]]:
    """Dagster's records of the device, where Dagster allows deleting them."""
    counts: dict[str, int] = {}
    kept: list[str] = []
    if not device_groups:
        partitions = {key: device_partition_keys(instance, key, device_id) for key in asset_keys}
        # Its runs: those of one partition carry the device's tag; a backfill run covers a
        # range of one device's dates and is found by the range's first key.
        runs = {r.dagster_run.run_id for r in instance.get_run_records(
            filters=dg.RunsFilter(tags={f"dagster/partition/{DEVICE}": device_id}))}
        for key in sorted({k for keys in partitions.values() for k in keys}):
            runs |= {r.dagster_run.run_id for r in instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/asset_partition_range_start": key}))}
        runs |= earlier_forget_runs(instance, device_id)
        counts["dagster check evaluations"] = delete_check_executions(instance, sorted(runs),
                                                                      kept)
        for run_id in sorted(runs):  # their event logs: the partitions' metadata and logs
            instance.delete_run(run_id)
        counts["dagster runs"] = len(runs)
        counts["dagster asset partitions"] = 0
        for key in asset_keys:
            # What deleting the runs left (a materialization reported outside a run, say):
            # wiped where the event log can wipe single partitions (Dagster's SQL storages
            # cannot: then it is listed, not hidden).
            left = device_partition_keys(instance, key, device_id)
            if not left:
                continue
            try:
                instance.wipe_asset_partitions(key, left)
                counts["dagster asset partitions"] += len(left)
            except NotImplementedError:
                kept.append(f"{key.to_user_string()}: {len(left)} partitions' records (this "
                            "event log cannot wipe single partitions)")
        had = device_id in instance.get_dynamic_partitions(DEVICES)
        if had:
            instance.delete_dynamic_partition(DEVICES, device_id)
        counts["dagster partition key"] = int(had)
        return counts, kept
    # Group mode: a group's partitions and runs are shared with the group's other devices.
    alone, shared, cursor = [], [], None
    while True:
        records = instance.get_run_records(limit=RUN_PAGE, cursor=cursor)
        if not records:
            break
        for record in records:
            named = (record.dagster_run.run_config or {}).get("resources", {}).get(
                "settings", {}).get("config", {}).get("devices") or []
            if device_id in named:
                (alone if list(named) == [device_id] else shared).append(
                    record.dagster_run.run_id)
        cursor = records[-1].dagster_run.run_id
    alone += sorted(earlier_forget_runs(instance, device_id))
    for run_id in alone:
        instance.delete_run(run_id)
    counts["dagster runs"] = len(alone)
    if shared:
        kept.append(f"{len(shared)} runs whose config names this device among others (shared "
                    f"group runs; Dagster deletes whole runs only): {', '.join(shared[:20])}")
    kept.append("group partitions (date|group) and their history: shared with the group's "
                "other devices, and they hold no per-device rows or words")
    return counts, kept


def forget_device(device_id: str, confirm: str, *, audio_store: AudioStore,
                  result_store: ResultStore, instance: dg.DagsterInstance | None,
                  asset_keys: Sequence[dg.AssetKey] = (), device_groups: int = 0,
                  log: logging.Logger | Any = None) -> ForgetReport:
    """Delete everything of the device (see the module's docstring); the report of this run.
    ``confirm`` must repeat the device id."""
    device = validate_device_id(device_id)
    if confirm != device:
        raise ForgetRefused(f"forget {device!r}: the confirmation (--confirm, or the job's "
                            f"confirm) must repeat the device id (got {confirm!r}); nothing "
                            "was deleted")
    log = log or logging.getLogger(__name__)
    request_id, resumed = result_store.open_request(device, FORGET)
    report = ForgetReport(request_id, device, resumed)

    def step(counts: dict[str, int]) -> None:
        # A place's first count stays: a resumed run finds only what the killed one left.
        report.counts.update(result_store.add_request_counts(request_id, counts))

    delete_objects(audio_store, device, step)
    result_store.delete_device_rows(device, step)
    if instance is not None:
        counts, report.kept = forget_in_dagster(instance, device, asset_keys, device_groups)
        step(counts)
    result_store.finish_request(request_id)
    log.info(f"forgot device {device}: request {request_id}, "
             f"{sum(report.counts.values())} records deleted")
    return report
