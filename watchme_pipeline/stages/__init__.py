"""The list of stages: the graph, in lineage order.

raw_audio → transcripts, event_scores, emotion_scores → vibe_prompt → mood_chart.

Each module declares one stage (``STAGE``) with its tables; the assets, the job, the checks,
the pods' memory, the CLI's summary and the docs' stage table are derived from ``STAGES``.
Adding a stage is a module, its migration, its test and one line here
(docs/architecture.md, "Add a stage").
"""

from __future__ import annotations

from watchme_pipeline.stage import Stage
from watchme_pipeline.stages import (
    emotion_scores,
    event_scores,
    mood_chart,
    raw_audio,
    transcripts,
    vibe_prompt,
)

STAGES: tuple[Stage, ...] = (
    raw_audio.STAGE,
    transcripts.STAGE,
    event_scores.STAGE,
    emotion_scores.STAGE,
    vibe_prompt.STAGE,
    mood_chart.STAGE,
)
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
