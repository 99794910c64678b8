"""record_failed_runs: every failed run goes to the run_failures table and the log."""

import datetime as dt

import dagster as dg

from watchme_pipeline.resources import ResultStore
from watchme_pipeline.secrets import redact


def failure_record(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps, classes, messages = [], [], []
    for event in context.get_step_failure_events():
        steps.append(event.step_key or "?")
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause  # the user's exception, not Dagster's wrapper around it
        if error is not None:
            classes.append(error.cls_name or "Error")
            messages.append(f"{event.step_key}: {error.message.strip()}")
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
