"""The three model assets, made by one factory from their stage descriptions (the way
dagster's modal_pipes example builds its feeds): each asset only wires Dagster's resources
and metadata to ``stage_runner.run_model_stage``."""

import dagster as dg

from watchme_pipeline.assets.common import (
    asset_defaults,
    per_partition,
    registered_devices,
    run_devices,
)
from watchme_pipeline.resources import AudioStore, ModelRegistry, ResultStore
from watchme_pipeline.resources.model_registry import ModelBudgetError
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stage_runner import ModelStage, run_model_stage
from watchme_pipeline.stages import RAW_AUDIO


def model_stage_asset(stage: ModelStage, partitions_def: dg.PartitionsDefinition,
                      code_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        **asset_defaults(stage.spec, partitions_def),
        deps=[RAW_AUDIO.asset],
        kinds={*stage.kinds, "sql"},  # sql: the configured store (definitions.py)
        tags={"stage": "model"},
        pool="models",
        code_version=code_version,
        description=stage.description,
    )
    def _stage_asset(context: dg.AssetExecutionContext, audio_store: AudioStore,
                     result_store: ResultStore, model_registry: ModelRegistry,
                     settings: PipelineSettings) -> dg.MaterializeResult:
        def one_day(day):
            try:
                outcome = run_model_stage(stage, day, audio_store=audio_store,
                                          result_store=result_store, registry=model_registry,
                                          settings=settings, log=context.log)
            except ModelBudgetError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            figures = outcome.figures()
            figures["failed_slots"] = dg.MetadataValue.json(outcome.failed_slots)
            # The code version names the deployment's maker; a run whose settings change the
            # output (set in the Launchpad) says so here, and its rows record their maker.
            figures["maker_is_code_version"] = outcome.maker == code_version
            if outcome.maker != code_version:
                context.log.info(f"{stage.spec.asset}: this run's settings differ from the "
                                 f"deployment's; rows made by: {outcome.maker}")
            return figures

        return per_partition(context, one_day, run_devices(
            partitions_def, settings, registered_devices(result_store)))

    return _stage_asset
