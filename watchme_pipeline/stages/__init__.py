"""The list of stages: the graph, in lineage order.

raw_audio → speakers → transcripts, emotion_scores; raw_audio → event_scores;
all → vibe_prompt → mood_chart.

Each module declares one stage (``STAGE``) with its tables; the assets, the job, the checks,
the pods' memory, the CLI's summary and the docs' stage table are derived from ``STAGES``.
Adding a stage is a module, its migration, its test and one line here: its module's name in
``STAGE_MODULES`` (docs/architecture.md, "Add a stage").
"""

from __future__ import annotations

import importlib

from watchme_pipeline.stage import Stage

# The graph, in lineage order: each name is a module of this package that declares ``STAGE``.
STAGE_MODULES = (
    "raw_audio",
    "speakers",
    "transcripts",
    "event_scores",
    "emotion_scores",
    "vibe_prompt",
    "mood_chart",
)
STAGES: tuple[Stage, ...] = tuple(importlib.import_module(f"{__name__}.{name}").STAGE
                                  for name in STAGE_MODULES)

from watchme_pipeline.stages import raw_audio  # noqa: E402  (loaded above)

raw_audio.add_status_columns(STAGES)


def stage_named(name: str, stages: tuple[Stage, ...] = STAGES) -> Stage:
    for stage in stages:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage named {name!r}")


def model_stages(stages: tuple[Stage, ...] = STAGES) -> tuple[Stage, ...]:
    """The stages that load a model, in lineage order."""
    return tuple(s for s in stages if s.model_kind)


__all__ = ["STAGES", "Stage", "model_stages", "stage_named"]
