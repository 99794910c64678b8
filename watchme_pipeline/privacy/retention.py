"""Audio retention (WATCHME_AUDIO_RETENTION_DAYS): raw audio is kept only as long as it is
needed. A daily schedule deletes the audio of recordings older than N days that every stage
has completed; results, charts and rows stay, and ``audio_files.audio_deleted_at`` says when
the audio went. A recording not completed by every stage (failed, pending, superseded) keeps
its audio. A day whose audio is gone can be materialized again: its results are kept.
"""

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

# Not postponed annotations: Dagster reads the op's resource types at definition.
from watchme_pipeline.resources import AudioStore
from watchme_pipeline.store import ResultStore

BATCH = 1000  # recordings read and deleted at a time
MAX_PER_RUN = 100_000  # a run's bound; the next day's run goes on where it stopped
JOB_NAME = "audio_retention"


def delete_expired_audio(result_store: ResultStore, audio_store: AudioStore,
                         today: dt.date, days: int, log: logging.Logger | Any = None,
                         max_recordings: int = MAX_PER_RUN) -> dict[str, int]:
    """Delete the audio of completed recordings of days before ``today - days``; counts."""
    log = log or logging.getLogger(__name__)
    cutoff = (today - dt.timedelta(days=days)).isoformat()
    deleted = 0
    while deleted < max_recordings:
        batch = result_store.expired_audio(cutoff, min(BATCH, max_recordings - deleted))
        if batch.empty:
            break
        for device, rows in batch.groupby("device_id"):
            for path in rows.file_path:
                audio_store.delete(path)  # gone already (a run killed here) is fine
            result_store.mark_audio_deleted(str(device), list(rows.file_path))
        deleted += len(batch)
    log.info(f"audio retention: deleted the audio of {deleted} completed recordings of days "
             f"before {cutoff}")
    return {"recordings": deleted, "days_kept": days}


def build_retention(timezone: str, days: int) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The retention job and its daily schedule (03:30 in the devices' time zone)."""

    @dg.op(name="delete_expired_audio",
           description=f"Deletes the audio of recordings older than {days} days that every "
           "stage completed; results, charts and rows stay.")
    def delete_op(context: dg.OpExecutionContext, result_store: ResultStore,
                  audio_store: AudioStore) -> None:
        today = dt.datetime.now(ZoneInfo(timezone)).date()
        delete_expired_audio(result_store, audio_store, today, days, context.log)

    @dg.job(name=JOB_NAME, description="Audio retention (WATCHME_AUDIO_RETENTION_DAYS).")
    def retention_job() -> None:
        delete_op()

    schedule = dg.ScheduleDefinition(
        name="audio_retention_daily", job=retention_job, cron_schedule="30 3 * * *",
        execution_timezone=timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Deletes raw audio older than {days} days once every stage is done.")
    return retention_job, schedule
