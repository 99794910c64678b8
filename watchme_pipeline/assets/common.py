"""What the assets share: the run's partitions, per-partition metadata, the policies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg

from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.partitions import DeviceDay, parse_partition_key
from watchme_pipeline.slots import InvalidIdentifier
from watchme_pipeline.stages import StageSpec

GROUP = "watchme"


def device_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext
                ) -> list[tuple[str, DeviceDay]]:
    """The run's partitions as (key, DeviceDay): one for a plain run, several for a backfill
    run that batches partitions (BATCHED_BACKFILL)."""
    try:
        return [(str(k), parse_partition_key(k)) for k in context.partition_keys]
    except InvalidIdentifier as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def per_partition(context: dg.AssetExecutionContext,
                  compute: Callable[[DeviceDay], dict[str, Any]]) -> dg.MaterializeResult:
    """Run ``compute(day)`` for each partition of the run; each partition gets the metadata
    it returns. The rows are already in the result store: nothing else is returned, and the
    metadata holds counts and figures only (no transcript, prompt or per-slot preview: they
    are people's days, and Dagster's event log would keep them without bound)."""
    for key, day in device_days(context):
        context.add_asset_metadata(compute(day), partition_key=key)
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
# Re-materialize when any upstream partition changes, for the dates a late upload can still
# reach: the default eager() only looks at the latest day (late uploads ignored), and no
# window at all makes every evaluation walk all dates x devices. Older days are redone by the
# sensor's runs (the whole graph) or from the UI.
LATE_UPLOAD_LOOKBACK = dt.timedelta(days=7)
ON_UPSTREAM_CHANGE = dg.AutomationCondition.eager().replace(
    dg.AutomationCondition.in_latest_time_window(),
    dg.AutomationCondition.in_latest_time_window(lookback_delta=LATE_UPLOAD_LOOKBACK),
)


def asset_defaults(spec: StageSpec, partitions_def: dg.PartitionsDefinition) -> dict[str, Any]:
    """What every asset of the graph is declared with."""
    return {
        "name": spec.asset,
        "partitions_def": partitions_def,
        "group_name": GROUP,
        "owners": ["team:watchme"],
        "backfill_policy": BATCHED_BACKFILL,
        "retry_policy": TRANSIENT_RETRY,
        "op_tags": pod_tags(spec),
    }
