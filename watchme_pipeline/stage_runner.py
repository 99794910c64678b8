"""The loop every slot stage shares, as plain Python: (stores, day, settings, log) in,
the day's figures out. The assets (``assets/``) only wire it to Dagster.

A slot is done for a stage when its row was made by the run's maker (``Stage.maker``: logic
version, model and the settings that change the output) and, for a stage that keeps a status
per recording, that status is ``completed``: after a model change, or in a run whose settings
change the output (another language), every slot is redone, without ``recompute``. Audio is
decoded a few slots at a time, as the stage needs it, so memory follows the model, not the
length of the day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from watchme_pipeline.audio import AudioDecodeError, DecodedAudio, decode
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.stage import DayWork, Stage, Voices

if TYPE_CHECKING:
    from watchme_pipeline.resources.audio_store import AudioStore
    from watchme_pipeline.resources.model_registry import ModelRegistry
    from watchme_pipeline.settings import PipelineSettings
    from watchme_pipeline.store import ResultStore

# Slots computed at once: a minute of 16 kHz audio is 3.8 MB, so a batch stays small beside
# any model, and a stage's rows are written (and its statuses moved) batch by batch.
SLOTS_PER_BATCH = 8


def decode_recording(audio_store: AudioStore, file_path: str,
                     segments: list | None = None) -> DecodedAudio:
    """Read and decode one recording; raises AudioDecodeError naming the file. ``segments``
    are the speech segments raw_audio stored for it (found again if absent)."""
    try:
        audio = decode(audio_store.read(file_path), file_path)
    except FileNotFoundError:
        raise AudioDecodeError(f"{file_path}: deleted from the audio store") from None
    if isinstance(segments, list):
        audio.segments = [(int(s), int(e)) for s, e in segments]
    return audio


def slots_to_do(current: pd.DataFrame, rows: pd.DataFrame, stage: Stage, maker: str,
                recompute: bool) -> pd.DataFrame:
    """The current recordings a stage must (re)compute: not completed, or made by another
    maker (or its row is missing), or all of them with ``recompute``. Recordings raw_audio
    found undecodable are left out: they are failed already, with the reason; so are those
    whose audio retention deleted: their rows stay as they were made."""
    decodable = current[current.decodes & current.audio_deleted_at.isna()]
    if recompute or not len(decodable):
        return decodable
    made_by = dict(zip(rows.time_block, rows.maker))
    statuses = (decodable[stage.status_column] if stage.status
                else ["completed"] * len(decodable))
    stale = [status != "completed" or made_by.get(slot) != maker
             for slot, status in zip(decodable.time_block, statuses)]
    return decodable[stale]


@dataclass
class StageOutcome:
    """What one run of a stage did for one day: its figures, and the day's rows after it."""

    maker: str  # what its rows record: the stage's maker and what attributed their speech
    model: str
    slots_found: int
    slots_skipped: int
    failed_slots: dict[str, str]
    rows: pd.DataFrame = field(repr=False)
    slots_processed: int = 0
    model_loaded: bool = False
    batch_size: int = 0
    audio_minutes: float = 0.0
    stage_seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)  # the stage's own figures
    stage_maker: str = ""  # the stage's maker for the run's settings (the code version's)

    def figures(self) -> dict[str, Any]:
        """Counts and figures for the asset's metadata (never a transcript or the audio)."""
        return {"slots_found": self.slots_found, "slots_skipped": self.slots_skipped,
                "slots_processed": self.slots_processed,
                "slots_failed": len(self.failed_slots), "failed_slots": self.failed_slots,
                "model": self.model, "maker": self.maker, "model_loaded": self.model_loaded,
                "batch_size": self.batch_size, "audio_minutes": round(self.audio_minutes, 2),
                "stage_seconds": round(self.stage_seconds, 2),
                "seconds_per_audio_minute": (round(self.stage_seconds / self.audio_minutes, 2)
                                             if self.audio_minutes else 0.0),
                **self.summary}


def run_slot_stage(stage: Stage, day: DeviceDay, *, audio_store: AudioStore | None,
                   result_store: ResultStore, registry: ModelRegistry | None,
                   settings: PipelineSettings, log: logging.Logger | Any,
                   memory_source: str = "WATCHME_MEMORY_MB") -> StageOutcome:
    """Compute what the day still needs for ``stage`` with this run's settings
    (``memory_source``: where ``settings.memory_mb`` was set, named when a model won't fit).

    A recording that cannot be decoded fails its own slot, recorded with the reason; an
    error of the model fails the slots of its batch (with the reason) and is raised.
    """
    current = result_store.current_recordings(day.device_id, day.date)
    model_id = registry.model_id(stage.model_kind) if stage.model_kind and registry else "-"
    maker = stage.maker(registry, settings)
    # A stage that hears the wearer only: its rows also name what attributed the speech.
    voices = stage.voices(result_store, day) if stage.voices else None
    row_maker = f"{maker} | {voices.maker}" if voices else maker
    todo = slots_to_do(current, result_store.read(stage.table.name, day.device_id, day.date),
                       stage, row_maker, settings.recompute)
    undecodable = current[~current.decodes]
    outcome = StageOutcome(maker=row_maker, stage_maker=maker, model=model_id,
                           slots_found=len(current),
                           slots_skipped=len(current) - len(todo) - len(undecodable),
                           failed_slots=dict(zip(undecodable.time_block, undecodable.error)),
                           rows=pd.DataFrame())
    loaded: list = []

    def load_model() -> Any:
        """The stage's model, loaded once (refused at once if it can't fit, naming where
        the limit was set)."""
        if not loaded and stage.model_kind and registry is not None:
            kind = stage.model_kind
            loaded_before = kind in registry.loaded_kinds()
            loaded.append(registry.get(kind, settings.memory_mb, memory_source))
            outcome.model_loaded = not loaded_before
            outcome.batch_size = registry.batch_size(kind, settings.memory_mb,
                                                     settings.batch_size(kind))
        return loaded[0] if loaded else None

    if len(todo):
        model, model_settings = load_model(), stage.model_settings(settings)
        if model is not None:
            model_settings = dataclasses.replace(model_settings, batch_size=outcome.batch_size)
        records = list(todo.itertuples())
        for i in range(0, len(records), SLOTS_PER_BATCH):
            _run_batch(stage, day, records[i:i + SLOTS_PER_BATCH], model, model_settings,
                       row_maker, audio_store, result_store, outcome, voices)
    for slot, reason in outcome.failed_slots.items():
        log.warning(f"{day}: slot {slot} failed ({stage.name}): {reason}")
    outcome.rows = result_store.read(stage.table.name, day.device_id, day.date)
    outcome.summary = stage.summarize(result_store, day, outcome.rows)
    if voices is not None:
        outcome.summary["speech_attributed"] = voices.attributed
    if stage.after_day is not None:
        outcome.summary.update(stage.after_day(DayWork(
            day=day, rows=outcome.rows, result_store=result_store, audio_store=audio_store,
            model=load_model, log=log)))
    return outcome


def _set_status(store: ResultStore, stage: Stage, day: DeviceDay, paths: list[str],
                status: str, error: str | None = None) -> None:
    if stage.status:
        store.set_status(day.device_id, paths, stage.status, status, error)


def _read_inputs(stage: Stage, day: DeviceDay, records: list, audio_store: AudioStore | None,
                 result_store: ResultStore, outcome: StageOutcome, voices: Voices | None = None
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """The batch's inputs by slot (decoded audio unless the stage reads something else), and
    the recordings they came from; a recording that does not decode fails its slot. With
    attributed ``voices``, each audio says who spoke where."""
    paths = {r.time_block: r.file_path for r in records}
    if stage.inputs is not None:
        return stage.inputs(result_store, day, list(paths)), paths
    assert audio_store is not None, f"{stage.name} reads audio: give it the audio store"
    audios: dict[str, DecodedAudio] = {}
    for r in records:
        try:
            audio = decode_recording(audio_store, r.file_path, r.vad_segments)
            if voices is not None and voices.attributed:
                audio.speakers = voices.turns.get(r.time_block, {})
            audios[r.time_block] = audio
        except AudioDecodeError as exc:
            outcome.failed_slots[r.time_block] = str(exc)
            del paths[r.time_block]
            _set_status(result_store, stage, day, [r.file_path], "failed", str(exc))
    return audios, paths


def _run_batch(stage: Stage, day: DeviceDay, records: list, model: Any, model_settings: Any,
               maker: str, audio_store: AudioStore | None, result_store: ResultStore,
               outcome: StageOutcome, voices: Voices | None = None) -> None:
    """Read, compute and write one batch of slots; add what it did to ``outcome``."""
    inputs, paths = _read_inputs(stage, day, records, audio_store, result_store, outcome,
                                 voices)
    if not paths:
        return
    started = list(paths.values())
    _set_status(result_store, stage, day, started, "processing")
    t0 = time.perf_counter()
    try:
        fields = stage.compute(model, inputs, model_settings)
    except Exception as exc:
        _set_status(result_store, stage, day, started, "failed",
                    f"{stage.name}: {type(exc).__name__}: {exc}")
        raise
    outcome.stage_seconds += time.perf_counter() - t0
    now = dt.datetime.now(dt.UTC)
    rows = [{"device_id": day.device_id, "date": day.date, "time_block": slot, **values,
             "model": outcome.model, "maker": maker, "processed_at": now}
            for slot, values in fields.items()]
    result_store.replace_partition(stage.table.name, day.device_id, day.date, rows,
                                   only_keys=True)
    _set_status(result_store, stage, day, started, "completed")
    outcome.slots_processed += len(paths)
    outcome.audio_minutes += sum(a.duration_s for a in inputs.values()
                                 if isinstance(a, DecodedAudio)) / 60
