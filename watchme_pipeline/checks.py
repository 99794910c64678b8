"""Asset checks on every device-day partition, from one table (``CHECKS``).

A check is a plain function of the run's device-days (labelled: the partition key, and the
device in group mode) and the stores; it returns one ``Verdict`` per day. ``build_checks``
wires each to Dagster and records one evaluation per partition of the run, against that
partition's latest materialization: a backfill run of ten partitions records ten, so the
checks list, the check's detail and the Lineage counts all read the same per-partition status.
"""


from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

# Not exported at the top level in 1.13 (pinned): what ties an evaluation to the partition's
# materialization, without which Dagster does not count it as the partition's current status.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from watchme_pipeline.assets.common import device_days, registered_devices, run_devices
from watchme_pipeline.partitions import DeviceDay, device_group_count
from watchme_pipeline.resources import AudioStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import SLOTS, day_prefix
from watchme_pipeline.stages import mood_chart, raw_audio
from watchme_pipeline.store import ResultStore

Days = list[tuple[str, DeviceDay]]  # (label, device-day): the label names the day in metadata
FAILED_SLOTS_WARN = 0.10  # warn when more than 10 % of a day's recordings fail
NEARBY_DAYS = 7  # a day without recordings is a finding when the device recorded this close


@dataclass(frozen=True)
class Verdict:
    """One device-day's result: its figures (the check's metadata, under the day's label) and,
    when it fails, the problem in one line naming the day."""

    figures: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    escalate: bool = False  # a failure that is an ERROR even for a WARN check


def failed_slots_below_threshold(days: Days, result_store: ResultStore,
                                 audio_store: AudioStore) -> list[Verdict]:
    figures = []
    for _, day in days:
        files = result_store.current_recordings(day.device_id, day.date)
        failed = files[~files.decodes]
        figures.append({"recordings": len(files), "failed": len(failed),
                        "reasons": dict(zip(failed.time_block, failed.error))})
    recordings = sum(f["recordings"] for f in figures)
    # ERROR (blocking) only when nothing of the run can be processed: one device's broken
    # day must not stop the other days of a batch or a group.
    nothing_usable = bool(recordings) and sum(f["failed"] for f in figures) == recordings
    return [Verdict(f, problem=(f"{label}: {f['failed']} of {f['recordings']} recordings fail"
                                if f["recordings"] and f["failed"] / f["recordings"]
                                > FAILED_SLOTS_WARN else None), escalate=nothing_usable)
            for (label, _), f in zip(days, figures)]


def day_has_recordings(days: Days, result_store: ResultStore,
                       audio_store: AudioStore) -> list[Verdict]:
    verdicts = []
    for label, day in days:
        found = len(result_store.recordings(day.device_id, day.date))
        if found:
            verdicts.append(Verdict({"recordings": found}))
            continue
        nearby = raw_audio.recorded_days_near(audio_store, day, NEARBY_DAYS)
        place = f"{day_prefix(day.device_id, day.date)} in {audio_store.describe()}"
        figures = {"recordings": 0, "looked_in": place, "recorded_nearby": nearby}
        verdicts.append(Verdict(figures, problem=(
            f"{label}: no recordings of {day.device_id} on {day.date} under {place}, though "
            f"it recorded on {', '.join(nearby)}") if nearby else None))
    return verdicts


def no_slot_left_pending(days: Days, result_store: ResultStore,
                         audio_store: AudioStore) -> list[Verdict]:
    verdicts = []
    for label, day in days:
        files = result_store.recordings(day.device_id, day.date)
        stuck = {name: sorted(files[files[f"{name}_status"].isin(["pending", "processing"])]
                              .time_block) for name in raw_audio.status_names()}
        stuck = {name: slots for name, slots in stuck.items() if slots}
        verdicts.append(Verdict({"stuck": stuck}, problem=(
            f"{label}: left pending in " + ", ".join(stuck)) if stuck else None))
    return verdicts


def scores_problem(day: DeviceDay, result_store: ResultStore) -> str | None:
    table = mood_chart.vibe_whisper_summary.name
    rows = result_store.read(table, day.device_id, day.date)
    if rows.empty:
        return f"no {table} row"
    scores = rows.iloc[0].vibe_scores
    files = result_store.current_recordings(day.device_id, day.date)
    usable = set(files[files.decodes].time_block)
    if len(scores) != len(SLOTS):
        return f"{len(scores)} time points, expected 48"
    if any(s is not None and not (isinstance(s, int) and -100 <= s <= 100) for s in scores):
        return "a score outside -100..100"
    if any((s is None) == (slot in usable) for slot, s in zip(SLOTS, scores)):
        return "null scores do not match the slots without a usable recording"
    return None


def scores_valid(days: Days, result_store: ResultStore,
                 audio_store: AudioStore) -> list[Verdict]:
    return [Verdict({"problem": problem}, problem=problem and f"{label}: {problem}")
            for label, day in days
            for problem in [scores_problem(day, result_store)]]


Check = Callable[[Days, ResultStore, AudioStore], list[Verdict]]
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR

# (check, the asset it checks, blocking, severity of a failure, what it checks).
CHECKS: list[tuple[Check, Any, bool, dg.AssetCheckSeverity, str]] = [
    (failed_slots_below_threshold, raw_audio.STAGE, True, WARN,
     "Failed recordings stay below 10 % of the day (WARN, with each reason); a run whose every "
     "recording fails is an ERROR that stops it before the models load."),
    (day_has_recordings, raw_audio.STAGE, False, WARN,
     f"A day without recordings is a finding when the device recorded within {NEARBY_DAYS} "
     "days of it (WARN, naming the date, where it looked and the days it did record): a "
     "device that stopped uploading must not look processed. Its later assets still "
     "materialize, and say the day was empty."),
    (no_slot_left_pending, mood_chart.STAGE, False, ERROR,
     "Once the day is charted, no recording is left pending or processing in any stage: each "
     "is completed, failed (with a reason, retried next run) or superseded."),
    (scores_valid, mood_chart.STAGE, False, ERROR,
     "48 scores on 48 time points, integers within −100…100, null exactly where the day has "
     "no usable recording."),
]


def target_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                           partition: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization: what its evaluation is about."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].event_log_entry.run_id,
        timestamp=records[0].timestamp)


def partition_evaluations(context: dg.AssetCheckExecutionContext, days: Days,
                          verdicts: list[Verdict], asset: str, name: str, blocking: bool,
                          severity: dg.AssetCheckSeverity) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per partition of the run: its days' figures, failed when any failed."""
    by_key: dict[str, list[tuple[str, Verdict]]] = {str(k): [] for k in context.partition_keys}
    for (label, _), verdict in zip(days, verdicts):
        by_key[label.split(" ")[0]].append((label, verdict))
    key = dg.AssetKey(asset)
    for partition, mine in by_key.items():
        problems = [v.problem for _, v in mine if v.problem]
        yield dg.AssetCheckEvaluation(
            asset_key=key, check_name=name, passed=not problems, blocking=blocking,
            severity=ERROR if any(v.escalate for _, v in mine if v.problem) else severity,
            description="; ".join(problems) if problems else None,
            metadata={"days": dg.MetadataValue.json({label: v.figures for label, v in mine})},
            partition=partition,
            target_materialization_data=target_materialization(context.instance, key,
                                                               partition))


def build_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The checks, for the graph's partitions."""
    grouped = bool(device_group_count(partitions_def))

    def wired(check: Check, stage, blocking: bool, severity: dg.AssetCheckSeverity) -> Callable:
        def run_check(context: dg.AssetCheckExecutionContext, result_store: ResultStore,
                      audio_store: AudioStore, settings: PipelineSettings) -> Iterator:
            days = [(f"{key} {day.device_id}" if grouped else key, day)
                    for key, day in device_days(context, run_devices(
                        partitions_def, settings, registered_devices(result_store)))]
            verdicts = check(days, result_store, audio_store)
            yield dg.Output(None)  # the check's own output; its results are the evaluations
            yield from partition_evaluations(context, days, verdicts, stage.name,
                                             check.__name__, blocking, severity)
        return run_check

    return [dg.asset_check(asset=stage.name, name=check.__name__,
                           partitions_def=partitions_def, blocking=blocking,
                           description=description)(wired(check, stage, blocking, severity))
            for check, stage, blocking, severity, description in CHECKS]
