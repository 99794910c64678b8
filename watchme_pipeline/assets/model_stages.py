"""The three model assets, made by one factory from their stage descriptions (the way
dagster's modal_pipes example builds its feeds): each asset only wires Dagster's resources
and metadata to ``stage_runner.run_model_stage``."""

import dagster as dg

from watchme_pipeline.assets.common import asset_defaults, per_partition, preview
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
                figures = run_model_stage(stage, day, audio_store=audio_store,
                                          result_store=result_store, registry=model_registry,
                                          settings=settings, log=context.log)
            except ModelBudgetError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            rows = figures.pop("rows")
            figures["failed_slots"] = dg.MetadataValue.json(figures["failed_slots"])
            figures.setdefault("preview", preview(rows, list(stage.preview_columns)))
            return figures

        return per_partition(context, one_day)

    return _stage_asset
