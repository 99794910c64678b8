"""Asset checks on every device-day partition.

Each check covers all device-days of the run it executes in (one for a plain run, a batch for a
backfill run, a group's devices in group mode) and reports each one's figures in its metadata.
A check is a plain function of the device-days (labelled: the partition key, and the device in
group mode) and the result store; ``build_checks`` wires it to Dagster.
"""

from collections.abc import Callable

import dagster as dg

from watchme_pipeline.assets.common import device_days, registered_devices, run_devices
from watchme_pipeline.partitions import DeviceDay, device_group_count
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stages import mood_chart, raw_audio
from watchme_pipeline.store import ResultStore

Days = list[tuple[str, DeviceDay]]
FAILED_SLOTS_WARN = 0.10  # warn when more than 10 % of a day's recordings fail


def failed_slots_below_threshold(days: Days,
                                 result_store: ResultStore) -> dg.AssetCheckResult:
    per_day, recordings, failures = {}, 0, 0
    for key, day in days:
        files = result_store.current_recordings(day.device_id, day.date)
        failed = files[~files.decodes]
        per_day[key] = {"recordings": len(files), "failed": len(failed),
                        "reasons": dict(zip(failed.time_block, failed.error))}
        recordings, failures = recordings + len(files), failures + len(failed)
    too_many = any(d["recordings"] and d["failed"] / d["recordings"] > FAILED_SLOTS_WARN
                   for d in per_day.values())
    # ERROR (blocking) only when nothing of the run can be processed: one device's broken
    # day must not stop the other days of a batch or a group.
    severity = (dg.AssetCheckSeverity.ERROR if recordings and failures == recordings
                else dg.AssetCheckSeverity.WARN)
    return dg.AssetCheckResult(passed=not too_many, severity=severity,
                               metadata={"days": dg.MetadataValue.json(per_day)})


def no_slot_left_pending(days: Days,
                         result_store: ResultStore) -> dg.AssetCheckResult:
    stuck = {}
    for key, day in days:
        files = result_store.recordings(day.device_id, day.date)
        for name in raw_audio.status_names():
            bad = files[files[f"{name}_status"].isin(["pending", "processing"])]
            if len(bad):
                stuck[f"{key} {name}"] = sorted(bad.time_block)
    return dg.AssetCheckResult(passed=not stuck, metadata={"stuck": dg.MetadataValue.json(stuck)})


def scores_valid(days: Days,
                 result_store: ResultStore) -> dg.AssetCheckResult:
    problems: dict[str, str] = {}
    for key, day in days:
        table = mood_chart.vibe_whisper_summary.name
        rows = result_store.read(table, day.device_id, day.date)
        if rows.empty:
            problems[key] = f"no {table} row"
            continue
        scores = rows.iloc[0].vibe_scores
        files = result_store.current_recordings(day.device_id, day.date)
        usable = set(files[files.decodes].time_block)
        if len(scores) != len(SLOTS):
            problems[key] = f"{len(scores)} time points, expected 48"
        elif any(s is not None and not (isinstance(s, int) and -100 <= s <= 100)
                 for s in scores):
            problems[key] = "a score outside -100..100"
        elif any((s is None) == (slot in usable) for slot, s in zip(SLOTS, scores)):
            problems[key] = "null scores do not match the slots without a usable recording"
    return dg.AssetCheckResult(passed=not problems,
                               metadata={"problems": dg.MetadataValue.json(problems)})


# (check, the asset it checks, blocking, what it checks): built for the graph's partitions.
CHECKS = [
    (failed_slots_below_threshold, raw_audio.STAGE, True,
     "Failed recordings stay below 10 % of the day (WARN, with each reason); a run whose every "
     "recording fails is an ERROR that stops it before the models load."),
    (no_slot_left_pending, mood_chart.STAGE, False,
     "Once the day is charted, no recording is left pending or processing in any stage: each "
     "is completed, failed (with a reason, retried next run) or superseded."),
    (scores_valid, mood_chart.STAGE, False,
     "48 scores on 48 time points, integers within −100…100, null exactly where the day has "
     "no usable recording."),
]


def build_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks, for the graph's partitions."""
    grouped = bool(device_group_count(partitions_def))

    def wired(check: Callable[[Days, ResultStore], dg.AssetCheckResult]) -> Callable:
        def run_check(context: dg.AssetCheckExecutionContext, result_store: ResultStore,
                      settings: PipelineSettings) -> dg.AssetCheckResult:
            days = device_days(context, run_devices(
                partitions_def, settings, registered_devices(result_store)))
            return check([(f"{key} {day.device_id}" if grouped else key, day)
                          for key, day in days], result_store)
        return run_check

    return [dg.asset_check(asset=stage.name, name=check.__name__,
                           partitions_def=partitions_def, blocking=blocking,
                           description=description)(wired(check))
            for check, stage, blocking, description in CHECKS]
