"""The daily reconciliation of queue mode: notifications can be lost (a misconfigured bucket, a
queue purged, an outage), so once a day the recent dates of every known device are listed and
any recording neither registered nor in the ledger is noted, as its notification would have
been. The queue sensor then requests its run. It says how many it found.

A job on a schedule, not a sensor: it lists one prefix per device and date, which for a fleet
takes minutes, far past a sensor tick's budget.
"""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

from watchme_pipeline.partitions import devices_partitions
from watchme_pipeline.resources import AudioStore, ResultStore
from watchme_pipeline.slots import InvalidIdentifier, day_prefix, parse_key

RECENT_DAYS = 2  # today and yesterday: what a notification could still be missing for


@dataclass(frozen=True)
class Reconciliation:
    device_days: int
    files_listed: int
    found: int  # recordings nobody was notified of


def reconcile_uploads(audio_store: AudioStore, result_store: ResultStore, devices: list[str],
                      dates: list[str]) -> Reconciliation:
    """Note every listed recording of ``devices`` x ``dates`` that neither ``audio_files`` nor
    the ledger knows."""
    listed = found = 0
    for device in devices:
        for date in dates:
            keys = [o.key for o in audio_store.list_objects(day_prefix(device, date))]
            listed += len(keys)
            if not keys:
                continue
            known = set(result_store.recordings(device, date).file_path)
            known |= result_store.noted_uploads(device, date)
            missing = []
            for key in keys:
                if key in known:
                    continue
                try:
                    parse_key(key)
                except InvalidIdentifier:
                    continue  # the run's raw_audio reports bad keys
                missing.append({"file_path": key, "device_id": device, "local_date": date,
                                "size": None, "sequencer": ""})
            result_store.note_uploads(missing)
            found += len(missing)
    return Reconciliation(len(devices) * len(dates), listed, found)


def recent_dates(now: dt.datetime, timezone: str, days: int = RECENT_DAYS) -> list[str]:
    today = now.astimezone(ZoneInfo(timezone)).date()
    return [(today - dt.timedelta(days=i)).isoformat() for i in range(days)]


def build_reconciliation(timezone: str) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The reconcile_uploads job and its daily schedule (03:00 in the devices' time zone)."""

    @dg.op(description="Lists today's and yesterday's recordings of every known device and "
           "notes those no notification announced; the queue sensor requests their runs.")
    def reconcile_recent_uploads(context: dg.OpExecutionContext, audio_store: AudioStore,
                                 result_store: ResultStore) -> dg.Output:
        devices = sorted(context.instance.get_dynamic_partitions(devices_partitions.name))
        outcome = reconcile_uploads(audio_store, result_store, devices,
                                    recent_dates(dt.datetime.now(dt.UTC), timezone))
        context.log.info(f"reconciliation: {outcome.found} recordings had no notification "
                         f"({outcome.files_listed} listed over {outcome.device_days} "
                         "device-days)")
        return dg.Output(None, metadata={"device_days": outcome.device_days,
                                         "files_listed": outcome.files_listed,
                                         "found_without_notification": outcome.found})

    @dg.job(name="reconcile_uploads", description="Catches uploads whose S3 notification "
            "never came (queue mode).")
    def reconcile_job():
        reconcile_recent_uploads()

    schedule = dg.ScheduleDefinition(
        name="reconcile_uploads_daily", job=reconcile_job, cron_schedule="0 3 * * *",
        execution_timezone=timezone, default_status=dg.DefaultScheduleStatus.RUNNING)
    return reconcile_job, schedule
