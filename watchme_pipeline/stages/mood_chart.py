"""mood_chart: per-slot vibe scores, day figures and the chart image → vibe_whisper_summary."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

import dagster as dg
import sqlalchemy as sa

from watchme_pipeline.chart import CHART_VERSION, render_chart
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.prompt import empty_day_text, is_empty_day
from watchme_pipeline.schema import JSON, UTCDateTime, key_columns, metadata
from watchme_pipeline.scoring import (
    RULES_VERSION,
    MalformedReply,
    MoodResult,
    SlotSummary,
    validate_reply,
)
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stage import NotRetried, Stage, StageRun
from watchme_pipeline.stages.vibe_prompt import vibe_whisper_prompt

if TYPE_CHECKING:
    from watchme_pipeline.resources import AudioStore, MoodScorer
    from watchme_pipeline.store import ResultStore

MAX_ATTEMPTS = 3
CHART_PREFIX = "charts"  # charts/{device}/{date}/mood_chart.png in the audio store
NO_RECORDINGS = "no recordings"  # on the chart's face, and the scorer of an empty day's row

vibe_whisper_summary = sa.Table(
    "vibe_whisper_summary", metadata, *key_columns("device_id", "date"),
    sa.Column("vibe_scores", JSON),
    *[sa.Column(name, sa.Float)
      for name in ("average_score", "positive_hours", "negative_hours", "neutral_hours")],
    sa.Column("insights", sa.Text),
    sa.Column("vibe_changes", JSON),
    sa.Column("chart_path", sa.Text),
    sa.Column("scorer", sa.Text),
    sa.Column("processed_at", UTCDateTime),
    sa.Index("vibe_whisper_summary_date", "date"),  # charts of a date, fleet-wide (0005)
)


class NoValidReply(NotRetried, RuntimeError):
    """The scorer's replies stayed malformed after every attempt."""


def score_validated(scorer: MoodScorer, prompt: str, slots: list[SlotSummary],
                    log: logging.Logger | Any, attempts: int = MAX_ATTEMPTS,
                    backoff_s: float = 1.0) -> MoodResult:
    """Ask the scorer until its reply validates; raise NoValidReply with the last error."""
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
    raise NoValidReply(f"mood scorer {scorer.name()} gave no valid reply after {attempts} "
                       f"attempts: {last_error}")


def empty_day_result(language: str) -> MoodResult:
    """A day without recordings: 48 nulls, no average, and insights that say so (the scorer
    is not asked: there is nothing to rate)."""
    return MoodResult(vibe_scores=[None] * len(SLOTS), average_score=None, positive_hours=0.0,
                      negative_hours=0.0, neutral_hours=0.0, insights=empty_day_text(language),
                      vibe_changes=[], warnings=[])


def chart_day(store: ResultStore, audio_store: AudioStore, scorer: MoodScorer, day: DeviceDay,
              log: logging.Logger | Any, language: str = "ja",
              ) -> tuple[dict, MoodResult, bytes, list[SlotSummary]]:
    """Score the prompt vibe_prompt stored, draw the chart, store both; return the record.
    A day without recordings gets a chart and a row that say so."""
    stored = store.read(vibe_whisper_prompt.name, day.device_id, day.date)
    if stored.empty:
        raise NoValidReply(f"{day}: no {vibe_whisper_prompt.name} row: materialize "
                           "vibe_prompt first")
    row = stored.iloc[0]
    slots = [SlotSummary(**s) for s in row.slots]
    empty = is_empty_day(slots)
    if empty:
        log.warning(f"{day}: no recordings: the chart and its row say so; the scorer was not "
                    "asked")
        result, scorer_name = empty_day_result(language), NO_RECORDINGS
    else:
        result, scorer_name = score_validated(scorer, row.prompt, slots, log), scorer.name()
    for warning in result.warnings:
        log.warning(warning)
    png, _ = render_chart(result.vibe_scores, f"{day.device_id}  {day.date}", result.vibe_changes,
                          note=NO_RECORDINGS if empty else None)
    chart_path = audio_store.write(f"{CHART_PREFIX}/{day.device_id}/{day.date}/mood_chart.png", png,
                                   "image/png")
    record = {
        "device_id": day.device_id, "date": day.date, "vibe_scores": result.vibe_scores,
        "average_score": result.average_score, "positive_hours": result.positive_hours,
        "negative_hours": result.negative_hours, "neutral_hours": result.neutral_hours,
        "insights": result.insights, "vibe_changes": result.vibe_changes,
        "chart_path": chart_path, "scorer": scorer_name,
        "processed_at": dt.datetime.now(dt.UTC),
    }
    store.replace_partition(vibe_whisper_summary.name, day.device_id, day.date, [record])
    return record, result, png, slots


def chart_of_day(run: StageRun, day: DeviceDay) -> dict[str, Any]:
    assert run.audio_store is not None and run.mood_scorer is not None
    record, result, png, slots = chart_day(run.result_store, run.audio_store, run.mood_scorer,
                                           day, run.log, run.settings.prompt_language)
    image = base64.b64encode(png).decode()
    return {
        "chart": dg.MetadataValue.md(f"![mood chart](data:image/png;base64,{image})"),
        "chart_path": dg.MetadataValue.path(record["chart_path"]),
        "average_score": result.average_score,
        "positive_hours": result.positive_hours,
        "negative_hours": result.negative_hours,
        "neutral_hours": result.neutral_hours,
        "scored_slots": sum(1 for s in result.vibe_scores if s is not None),
        # Numbers on every materialization, so the UI plots them across partitions.
        "recorded_slots": sum(1 for s in slots if s.recorded),
        "failed_slots": sum(1 for s in slots if s.failed),
        "insights": dg.MetadataValue.text(result.insights or "-"),
        "scorer": record["scorer"],
        "empty_day": is_empty_day(slots),
        "scores": dg.MetadataValue.json(dict(zip(SLOTS, result.vibe_scores))),
    }


STAGE = Stage(
    name="mood_chart",
    tables=(vibe_whisper_summary,),
    deps=("vibe_prompt",),
    # The chart image goes to the audio store beside the recordings.
    resources=frozenset({"audio_store", "result_store", "mood_scorer", "settings"}),
    run_day=chart_of_day,
    automatic=True,
    code_version_of=lambda makers: f"{CHART_VERSION}|{RULES_VERSION}|{makers.scorer}",
    working_mb=150,  # matplotlib
    description="Per-slot mood −100…100 (null where there is no recording), the day's "
    "average, positive/negative/neutral hours, insights and notable changes, validated "
    "whatever the scorer replied, plus the chart image. A day without recordings is not "
    "scored: its chart says \"no recordings\" and its row's insights say so. Stored in "
    "`vibe_whisper_summary`. "
    "Each materialization's metadata has the chart (open it with *Show Markdown*), the "
    "insights, and the day's numbers (average score, hours, recorded and failed slots) "
    "that the UI plots across partitions.",
)
