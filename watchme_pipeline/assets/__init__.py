"""The asset graph, in lineage order:
raw_audio → transcripts, event_scores, emotion_scores → vibe_prompt → mood_chart.

Assets are built for the deployment's partitions and models (``build_assets``, called by
``definitions.py``): their partitions follow the configured time zone and start date, and the
model stages' code versions name the configured models.
"""

from __future__ import annotations

import dagster as dg

from watchme_pipeline.assets.emotion_scores import emotion_scores_stage
from watchme_pipeline.assets.event_scores import event_scores_stage
from watchme_pipeline.assets.model_stages import model_stage_asset
from watchme_pipeline.assets.mood_chart import mood_chart_asset
from watchme_pipeline.assets.raw_audio import raw_audio_asset
from watchme_pipeline.assets.transcripts import transcripts_stage
from watchme_pipeline.assets.vibe_prompt import vibe_prompt_asset
from watchme_pipeline.resources import ModelRegistry
from watchme_pipeline.settings import PipelineSettings

MODEL_STAGES = (transcripts_stage, event_scores_stage, emotion_scores_stage)


def build_assets(partitions_def: dg.MultiPartitionsDefinition, registry: ModelRegistry,
                 settings: PipelineSettings, scorer_id: str) -> list[dg.AssetsDefinition]:
    """The six assets, in lineage order."""
    # A model stage's code version is the deployment's maker (its rows' maker with the
    # deployment's settings): a model or setting change of the deployment shows it stale.
    stages = [model_stage_asset(stage, partitions_def,
                                stage.maker(registry.model_id(stage.kind), settings))
              for stage in MODEL_STAGES]
    return [raw_audio_asset(partitions_def), *stages, vibe_prompt_asset(partitions_def),
            mood_chart_asset(partitions_def, scorer_id)]


__all__ = ["MODEL_STAGES", "build_assets"]
