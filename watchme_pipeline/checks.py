"""Asset checks on every device-day partition.

Each check covers all partitions of the run it executes in (one for a plain run, a batch for a
backfill run) and reports each partition's figures in its metadata.
"""

import dagster as dg

from watchme_pipeline.assets.common import device_days
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stages import MOOD_CHART, RAW_AUDIO, STATUS_NAMES

FAILED_SLOTS_WARN = 0.10  # warn when more than 10 % of a day's recordings fail


def failed_slots_below_threshold(context: dg.AssetCheckExecutionContext,
                                 result_store: ResultStore) -> dg.AssetCheckResult:
    per_day, worst = {}, (dg.AssetCheckSeverity.WARN, True)
    for key, day in device_days(context):
        files = result_store.current_recordings(day.device_id, day.date)
        failed = files[~files.decodes]
        per_day[key] = {"recordings": len(files), "failed": len(failed),
                        "reasons": dict(zip(failed.time_block, failed.error))}
        if len(files) and len(failed) == len(files):
            worst = (dg.AssetCheckSeverity.ERROR, False)
        elif len(files) and len(failed) / len(files) > FAILED_SLOTS_WARN and worst[1]:
            worst = (dg.AssetCheckSeverity.WARN, False)
    return dg.AssetCheckResult(passed=worst[1], severity=worst[0],
                               metadata={"days": dg.MetadataValue.json(per_day)})


def no_slot_left_pending(context: dg.AssetCheckExecutionContext,
                         result_store: ResultStore) -> dg.AssetCheckResult:
    stuck = {}
    for key, day in device_days(context):
        files = result_store.recordings(day.device_id, day.date)
        for stage in STATUS_NAMES:
            bad = files[files[f"{stage}_status"].isin(["pending", "processing"])]
            if len(bad):
                stuck[f"{key} {stage}"] = sorted(bad.time_block)
    return dg.AssetCheckResult(passed=not stuck, metadata={"stuck": dg.MetadataValue.json(stuck)})


def scores_valid(context: dg.AssetCheckExecutionContext,
                 result_store: ResultStore) -> dg.AssetCheckResult:
    problems: dict[str, str] = {}
    for key, day in device_days(context):
        rows = result_store.stage_rows(MOOD_CHART, day.device_id, day.date)
        if rows.empty:
            problems[key] = "no vibe_whisper_summary row"
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
    (failed_slots_below_threshold, RAW_AUDIO, True,
     "Failed recordings stay below 10 % of the day (WARN, with each reason); a day whose every "
     "recording fails is an ERROR that stops the run before the models load."),
    (no_slot_left_pending, MOOD_CHART, False,
     "Once the day is charted, no recording is left pending or processing in any stage: each "
     "is completed, failed (with a reason, retried next run) or superseded."),
    (scores_valid, MOOD_CHART, False,
     "48 scores on 48 time points, integers within −100…100, null exactly where the day has "
     "no usable recording."),
]


def build_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks, for the graph's partitions."""
    return [dg.asset_check(asset=stage.asset, partitions_def=partitions_def, blocking=blocking,
                           description=description)(check)
            for check, stage, blocking, description in CHECKS]
