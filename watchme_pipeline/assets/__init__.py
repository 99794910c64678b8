"""The asset graph, derived from the list of stages (``stages.STAGES``): one factory makes
every stage's asset, with its dependencies, kinds, pool, policies, pod size and code version.

Assets are built for the deployment's partitions and models (``build_assets``, called by
``definitions.py``): their partitions follow the configured time zone and start date, and the
code versions name the configured models.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg

from watchme_pipeline.assets.common import (
    ON_UPSTREAM_CHANGE,
    asset_defaults,
    per_partition,
    registered_devices,
    run_devices,
)
from watchme_pipeline.memory import peak_rss_mb
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.run_settings import setting_source
from watchme_pipeline.stage import Makers, NotRetried, Stage, StageRun
from watchme_pipeline.stage_runner import run_slot_stage
from watchme_pipeline.stages import STAGES


def slot_stage_day(stage: Stage) -> Callable[[StageRun, DeviceDay], dict[str, Any]]:
    """A slot stage's work for one device-day, as its asset runs it: the partition's figures
    (the runner's, with the failed slots and whether the run's maker is the code version)."""
    def run_day(run: StageRun, day: DeviceDay) -> dict[str, Any]:
        outcome = run_slot_stage(stage, day, audio_store=run.audio_store,
                                 result_store=run.result_store, registry=run.model_registry,
                                 settings=run.settings, log=run.log,
                                 memory_source=run.memory_source)
        figures = outcome.figures()
        figures["failed_slots"] = dg.MetadataValue.json(outcome.failed_slots)
        # The process's high-water mark so far: a step's own where each step is a process
        # (multiprocess, a pod per step): what its memory request should cover.
        figures["peak_rss_mb"] = round(peak_rss_mb())
        # The code version names the deployment's maker; a run whose settings change the
        # output (set in the Launchpad) says so here, and its rows record their maker.
        figures["maker_is_code_version"] = outcome.stage_maker == run.code_version
        if outcome.stage_maker != run.code_version:
            run.log.info(f"{stage.name}: this run's settings differ from the deployment's; "
                         f"rows made by: {outcome.maker}")
        return figures
    return run_day


def stage_asset(stage: Stage, partitions_def: dg.MultiPartitionsDefinition, code_version: str,
                store_kinds: dict[str, str]) -> dg.AssetsDefinition:
    """The stage's asset: a thin wrapper that runs the stage for each device-day of the run."""
    run_day = stage.run_day or slot_stage_day(stage)
    timezone = partitions_def.get_partitions_def_for_dimension("date").timezone
    kinds = set(stage.kind_tags) | {kind for key, kind in store_kinds.items()
                                if key in stage.resources}

    @dg.asset(
        **asset_defaults(stage, partitions_def),
        deps=list(stage.upstream),
        kinds=kinds,
        tags={"stage": stage.tag},
        required_resource_keys=set(stage.resource_keys),
        code_version=code_version,
        description=stage.description,
        **({"pool": "models"} if stage.model_kind else {}),
        **({"automation_condition": ON_UPSTREAM_CHANGE} if stage.automatic else {}),
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        resources = context.resources
        run = StageRun(log=context.log, code_version=code_version, timezone=timezone,
                       memory_source=setting_source(context.run.run_config, "memory_mb",
                                                    "WATCHME_MEMORY_MB"),
                       **{key: getattr(resources, key) for key in stage.resource_keys})

        def one_day(day):
            try:
                return run_day(run, day)
            except NotRetried as exc:  # the input's or the configuration's fault: say it once
                raise dg.Failure(description=str(exc), allow_retries=False) from None

        of_group = (stage.devices_of_group(run) if stage.devices_of_group
                    else registered_devices(run.result_store))
        return per_partition(context, one_day, run_devices(partitions_def, run.settings,
                                                           of_group))

    return _asset


def build_assets(partitions_def: dg.MultiPartitionsDefinition, makers: Makers,
                 stages: tuple[Stage, ...] = STAGES,
                 store_kinds: dict[str, str] | None = None) -> list[dg.AssetsDefinition]:
    """Every stage's asset, in lineage order. ``store_kinds``: the kind tags of the configured
    stores by resource key (``audio_store``: folder or s3; ``result_store``: sqlite,
    postgres or supabase)."""
    kinds = store_kinds or {"audio_store": "folder", "result_store": "sqlite"}
    return [stage_asset(stage, partitions_def, stage.code_version(makers), kinds)
            for stage in stages]


__all__ = ["build_assets", "stage_asset"]
