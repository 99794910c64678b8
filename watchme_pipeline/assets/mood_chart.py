"""mood_chart: per-slot vibe scores, day figures and the chart image → vibe_whisper_summary."""


import base64
import datetime as dt
import time

import dagster as dg

from watchme_pipeline.assets.common import (
    ASSET_DEFAULTS,
    ON_UPSTREAM_CHANGE,
    PerPartition,
    for_partition,
    per_partition,
)
from watchme_pipeline.chart import render_chart
from watchme_pipeline.deployment import pod_tags
from watchme_pipeline.resources import AudioStore, MoodScorer, ResultStore
from watchme_pipeline.scoring import MalformedReply, MoodResult, SlotSummary, validate_reply
from watchme_pipeline.slots import SLOTS

MAX_ATTEMPTS = 3


def score_validated(scorer: MoodScorer, prompt: str, slots: list[SlotSummary], log,
                    attempts: int = MAX_ATTEMPTS, backoff_s: float = 1.0) -> MoodResult:
    """Ask the scorer until its reply validates; fail with the last raw reply otherwise."""
    recorded = {s.slot for s in slots if s.recorded}
    last_error, last_raw = None, None
    for attempt in range(1, attempts + 1):
        raw = scorer.score_day(prompt, slots, log)
        try:
            return validate_reply(raw, recorded)
        except MalformedReply as exc:
            last_error, last_raw = exc, raw
            log.warning(f"malformed scorer reply (attempt {attempt}/{attempts}): {exc}")
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    log.error(f"scorer reply stayed malformed: {last_raw!r}")
    raise dg.Failure(description=f"mood scorer {scorer.name()} gave no valid reply after "
                     f"{attempts} attempts: {last_error}", allow_retries=False)


@dg.asset(
    **ASSET_DEFAULTS,
    op_tags=pod_tags("mood_chart"),
    kinds={"python", "sql", "audio"},  # the chart image goes to the audio store
    tags={"stage": "aggregate"},
    automation_condition=ON_UPSTREAM_CHANGE,
    description="Per-slot mood −100…100 (null where there is no recording), the day's average, "
    "positive/negative/neutral hours, insights and notable changes, validated whatever the "
    "scorer replied, plus the chart image. Stored in `vibe_whisper_summary`. Each "
    "materialization's metadata has the chart (open it with *Show Markdown*), the insights, "
    "and the day's numbers (average score, hours, recorded and failed slots) that the UI "
    "plots across partitions.",
)
def mood_chart(
    context: dg.AssetExecutionContext,
    vibe_prompt: PerPartition,
    audio_store: AudioStore,
    result_store: ResultStore,
    mood_scorer: MoodScorer,
) -> PerPartition:
    def one_day(key, day):
        day_prompt = for_partition(vibe_prompt, key, context)
        slots = [SlotSummary(**s) for s in day_prompt["slots"]]
        result = score_validated(mood_scorer, day_prompt["prompt"], slots, context.log)
        for warning in result.warnings:
            context.log.warning(warning)
        png, _ = render_chart(result.vibe_scores, f"{day.device_id}  {day.date}",
                              result.vibe_changes)
        chart_path = audio_store.write(f"charts/{day.device_id}/{day.date}/mood_chart.png", png,
                                       "image/png")
        record = {
            "device_id": day.device_id, "date": day.date, "vibe_scores": result.vibe_scores,
            "average_score": result.average_score, "positive_hours": result.positive_hours,
            "negative_hours": result.negative_hours, "neutral_hours": result.neutral_hours,
            "insights": result.insights, "vibe_changes": result.vibe_changes,
            "chart_path": chart_path, "scorer": mood_scorer.name(),
            "processed_at": dt.datetime.now(dt.UTC),
        }
        result_store.replace_partition("vibe_whisper_summary", day.device_id, day.date, [record])
        image = base64.b64encode(png).decode()
        meta = {
            "chart": dg.MetadataValue.md(f"![mood chart](data:image/png;base64,{image})"),
            "chart_path": dg.MetadataValue.path(chart_path),
            "average_score": result.average_score,
            "positive_hours": result.positive_hours,
            "negative_hours": result.negative_hours,
            "neutral_hours": result.neutral_hours,
            "scored_slots": sum(1 for s in result.vibe_scores if s is not None),
            # Numbers on every materialization, so the UI plots them across partitions.
            "recorded_slots": sum(1 for s in slots if s.recorded),
            "failed_slots": sum(1 for s in slots if s.failed),
            "insights": dg.MetadataValue.text(result.insights or "-"),
            "scorer": mood_scorer.name(),
            "scores": dg.MetadataValue.json(dict(zip(SLOTS, result.vibe_scores))),
        }
        return record, meta

    return per_partition(context, one_day)
