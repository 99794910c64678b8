"""upload_queue_sensor, queue mode (WATCHME_UPLOAD_QUEUE): uploads come from the bucket's S3
event notifications instead of a listing, and a device-day's run batches its new uploads.

A tick (1) drains the queue within a time budget: each batch of messages is noted in the
result store's ``uploads`` ledger in one transaction and only then deleted, so a crash between
the two leaves the messages to come back and be noted again, harmlessly; (2) requests a run for
each device-day whose oldest pending upload is ``run_delay_s`` old, covering all its pending
uploads (one run, not one per file); (3) settles old requests: uploads that raw_audio
registered are forgotten, the others (their run never came) are requested again. Nothing it
reads grows with the bucket's history: the queue holds what is new, the ledger what is pending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from watchme_pipeline.partitions import DATE, DeviceDay, device_group_count, devices_partitions
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.resources.upload_queue import UploadQueue, parse_notifications
from watchme_pipeline.sensors.run_requests import DayRun, partition_runs

TICK_BUDGET_S = 20.0  # draining stops after this; a tick stays well inside Dagster's 60 s
MAX_MESSAGES_PER_TICK = 20_000
RECEIVES_PER_NOTE = 10  # up to 100 messages noted in one transaction, then deleted
MAX_RUNS_PER_TICK = 500
REQUEST_AGAIN_AFTER = dt.timedelta(minutes=30)  # a requested upload not registered by then


@dataclass
class DrainFigures:
    received: int = 0
    noted: int = 0
    deleted: int = 0
    other_events: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # forgotten device -> uploads
    seconds: float = 0.0
    queue_seconds: float = 0.0  # of which in SQS calls (receive, delete)


def drain_queue(queue: UploadQueue, store: ResultStore, valid_dates: set[str],
                budget_s: float = TICK_BUDGET_S, max_messages: int = MAX_MESSAGES_PER_TICK,
                clock: Callable[[], float] = time.monotonic) -> DrainFigures:
    """Note the queue's uploads in the ledger, then delete their messages, until the queue is
    empty, the budget is spent or ``max_messages`` were read."""
    figures, start = DrainFigures(), clock()
    while figures.received < max_messages and clock() - start < budget_s:
        messages, t0 = [], clock()
        for _ in range(RECEIVES_PER_NOTE):
            batch = queue.receive(10)
            messages += batch
            if len(batch) < 10:
                break
        figures.queue_seconds += clock() - t0
        if not messages:
            break
        figures.received += len(messages)
        notice = parse_notifications([m.body for m in messages], queue.key_prefix)
        uploads = []
        for upload in notice.uploads:
            if upload["local_date"] in valid_dates:
                uploads.append(upload)
            else:
                figures.skipped[upload["file_path"]] = (
                    f"date {upload['local_date']} is outside the partitions")
        # A forgotten device's uploads are refused (counted, never noted) until re-admitted.
        forgotten = store.forgotten({u["device_id"] for u in uploads})
        for upload in [u for u in uploads if u["device_id"] in forgotten]:
            figures.refused[upload["device_id"]] = figures.refused.get(upload["device_id"],
                                                                       0) + 1
        uploads = [u for u in uploads if u["device_id"] not in forgotten]
        store.note_uploads(uploads)  # durable first ...
        t0 = clock()
        figures.deleted += queue.delete(messages)  # ... then gone from the queue
        figures.queue_seconds += clock() - t0
        figures.noted += len(uploads)
        figures.other_events += notice.other_events
        figures.skipped.update(notice.skipped)
        if len(messages) < 10 * RECEIVES_PER_NOTE:
            break
    figures.seconds = clock() - start
    return figures


def plan_queue_runs(pending: pd.DataFrame, now: dt.datetime, delay_s: float,
                    max_runs: int = MAX_RUNS_PER_TICK) -> tuple[list[DayRun], int]:
    """The device-days whose oldest pending upload is ``delay_s`` old, oldest first, each with
    all its pending uploads; and how many device-days wait (younger, or past ``max_runs``)."""
    if pending.empty:
        return [], 0
    cutoff = now - dt.timedelta(seconds=delay_s)
    runs, waiting = [], 0
    grouped = pending.groupby(["device_id", "local_date"])
    for (device, date), rows in sorted(grouped, key=lambda g: g[1].noted_at.min()):
        if rows.noted_at.min() > cutoff or len(runs) >= max_runs:
            waiting += 1
            continue
        keys = sorted(rows.file_path)
        attempt = int(rows.attempts.max()) + 1
        digest = hashlib.sha1("\n".join([*keys, str(attempt)]).encode()).hexdigest()[:16]
        runs.append(DayRun(DeviceDay(device, date), keys, f"{date}|{device}:{digest}"))
    return runs, waiting


def build_upload_queue_sensor(partitions_def: dg.MultiPartitionsDefinition, job_name: str,
                              run_delay_s: float,
                              now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
                              ) -> dg.SensorDefinition:
    dates = partitions_def.get_partitions_def_for_dimension(DATE)
    device_groups = device_group_count(partitions_def)

    @dg.sensor(
        name="upload_queue_sensor",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Reads the bucket's upload notifications (WATCHME_UPLOAD_QUEUE), notes "
        "each upload, and requests a run per device-day (per date and device group with "
        "WATCHME_DEVICE_GROUPS) once its oldest new upload is "
        f"{run_delay_s:g} s old, covering all of that day's new uploads. Uploads of a "
        "forgotten device are refused and counted until it is re-admitted.",
    )
    def upload_queue_sensor(context: dg.SensorEvaluationContext, upload_queue: UploadQueue,
                         result_store: ResultStore) -> dg.SensorResult:
        valid = set(dates.get_partition_keys(dynamic_partitions_store=context.instance))
        return queue_tick(context, upload_queue, result_store, valid, now, run_delay_s,
                          device_groups)

    return upload_queue_sensor


def queue_tick(context: dg.SensorEvaluationContext, queue: UploadQueue, store: ResultStore,
               valid_dates: set[str], clock: Callable[[], dt.datetime], run_delay_s: float,
               device_groups: int = 0) -> dg.SensorResult:
    drained = drain_queue(queue, store, valid_dates)
    now = clock()  # after draining: what was just noted counts from now
    registered, again, given_up = store.settle_uploads(now - REQUEST_AGAIN_AFTER)
    days, waiting = plan_queue_runs(store.pending_uploads(limit=100_000), now, run_delay_s)
    runs = partition_runs(days, device_groups)
    for run in runs:
        store.mark_requested(run.keys, run.run_key, now)
    for key, reason in list(drained.skipped.items())[:20]:
        context.log.warning(f"skipped {key}: {reason}")
    for device, count in drained.refused.items():
        context.log.warning(f"{count} uploads of forgotten device {device} refused "
                            f"(`python -m watchme_pipeline readmit {device}` accepts new ones)")
    if given_up:
        context.log.error(f"{given_up} uploads were requested 3 times and never registered: "
                          "given up (see the runs of their device-days)")
    new_devices = sorted({d.day.device_id for d in days
                          if not context.instance.has_dynamic_partition(
                              devices_partitions.name, d.day.device_id)})
    context.log.info(
        f"received {drained.received} messages in {drained.seconds:.1f}s ("
        f"{drained.queue_seconds:.1f}s in SQS calls): {drained.noted} "
        f"uploads noted, {drained.deleted} deleted, {len(drained.skipped)} skipped, "
        f"{drained.other_events} other events; {len(runs)} runs requested for {len(days)} "
        f"device-days, {waiting} "
        f"device-days wait; settled {registered} registered, {again} requested again")
    return dg.SensorResult(
        run_requests=[r.request() for r in runs],
        dynamic_partitions_requests=(
            [devices_partitions.build_add_request(new_devices)] if new_devices else []),
    )
