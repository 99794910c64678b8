"""Every stage of the graph described once: its asset, the fleet's names for its tables and
status column, the model it needs and what its pod asks for.

The fleet we replace named one stage four ways (asset ``transcripts``, status
``transcriptions_status``, table ``vibe_whisper``, model ``whisper``); the dashboard still reads
those tables, so the names stay, and this is the only place that pairs them. Schema, pods,
assets, checks and tests look a stage up here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    asset: str  # the Dagster asset
    tables: tuple[str, ...]  # what it writes; the first holds its per-slot rows
    # k8s request, limit: the larger of make bench's measured step peak and the registry's
    # estimate, rounded up to 50 MiB, +25 % (docs/scaling.md, benchmarks/capacity_plan.py)
    pod_memory: tuple[str, str]
    status: str | None = None  # model stages: audio_files.{status}_status
    model_kind: str | None = None  # model stages: the ModelRegistry kind

    @property
    def table(self) -> str:
        return self.tables[0]

    @property
    def status_column(self) -> str:
        if self.status is None:
            raise ValueError(f"{self.asset} has no status column (not a model stage)")
        return f"{self.status}_status"


RAW_AUDIO = StageSpec("raw_audio", ("audio_files",), ("350Mi", "450Mi"))
TRANSCRIPTS = StageSpec("transcripts", ("vibe_whisper",), ("700Mi", "900Mi"),
                        status="transcriptions", model_kind="whisper")
EVENT_SCORES = StageSpec("event_scores", ("behavior_yamnet", "behavior_summary"),
                         ("1200Mi", "1500Mi"), status="behavior_features", model_kind="events")
EMOTION_SCORES = StageSpec("emotion_scores", ("emotion_superb", "emotion_opensmile_summary"),
                           ("1000Mi", "1250Mi"), status="emotion_features", model_kind="emotion")
VIBE_PROMPT = StageSpec("vibe_prompt", ("vibe_whisper_prompt",), ("256Mi", "512Mi"))
MOOD_CHART = StageSpec("mood_chart", ("vibe_whisper_summary",), ("384Mi", "512Mi"))

ALL_STAGES = (RAW_AUDIO, TRANSCRIPTS, EVENT_SCORES, EMOTION_SCORES, VIBE_PROMPT, MOOD_CHART)
# The model stages' descriptions (their Dagster-side stages: assets.MODEL_STAGES).
MODEL_STAGE_SPECS = (TRANSCRIPTS, EVENT_SCORES, EMOTION_SCORES)
# The status columns' prefixes in audio_files, in the fleet's order.
STATUS_NAMES = tuple(s.status for s in MODEL_STAGE_SPECS if s.status)
