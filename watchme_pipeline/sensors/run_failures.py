"""record_failed_runs: every failed run goes to the run_failures table and the log."""

import datetime as dt
import re

import dagster as dg

from watchme_pipeline.resources import ResultStore
from watchme_pipeline.secrets import redact


def reason_of(message: str, cls_name: str | None) -> str:
    """The error's own words: without the (qualified) class name Dagster puts in front
    ("dagster._core.definitions.events.Failure: unknown device …" -> "unknown device …")."""
    if cls_name:
        message = re.sub(rf"^(?:[\w.]+\.)?{re.escape(cls_name)}: ", "", message.strip())
    return message.strip()


def failure_record(context: dg.RunFailureSensorContext) -> dict:
    """The failure as the alert says it: the steps, the error classes, and the reason, once
    (one step: its reason; several: one ``step: reason`` line each)."""
    run = context.dagster_run
    steps, classes, reasons = [], [], []
    for event in context.get_step_failure_events():
        steps.append(event.step_key or "?")
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause  # the user's exception, not Dagster's wrapper around it
        if error is not None:
            classes.append(error.cls_name or "Error")
            reasons.append((event.step_key, reason_of(error.message, error.cls_name)))
    if len(reasons) == 1:
        messages = [reasons[0][1]]
    else:
        messages = [f"{step}: {reason}" for step, reason in reasons]
    if not messages:  # a run that failed outside any step (launch, crash, check)
        messages.append(context.failure_event.message or "run failed")
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "partition": run.tags.get("dagster/partition")
        or "..".join(filter(None, [run.tags.get("dagster/asset_partition_range_start"),
                                   run.tags.get("dagster/asset_partition_range_end")])),
        "steps": ",".join(steps),
        "error_class": ",".join(sorted(set(classes))) or "RunFailure",
        "message": redact("\n".join(messages))[:4000],
        "failed_at": dt.datetime.now(dt.UTC),
    }


@dg.run_failure_sensor(
    name="record_failed_runs",
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Records every failed run (partition, steps, error class, message with secrets "
    "removed) in `run_failures` and the log, so no failure sits unseen.",
)
def record_failed_runs(context: dg.RunFailureSensorContext, result_store: ResultStore) -> None:
    record = failure_record(context)
    result_store.record_run_failure(record)
    context.log.error(
        f"run {record['run_id']} ({record['job_name']}, partition {record['partition'] or '-'}) "
        f"failed in {record['steps'] or 'no step'}: {record['error_class']}: {record['message']}"
    )
