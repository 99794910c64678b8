"""The loop every model stage shares, as plain Python: (stores, day, settings, log) in,
the day's figures out. The assets in ``assets/model_stages.py`` only wire it to Dagster.

A slot is done for a stage when its status is ``completed`` *and* its row was made by the
current model: after a model change every slot is redone, without ``recompute``. Audio is
decoded a few slots at a time, as the stage needs it, so memory follows the model, not the
length of the day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from watchme_pipeline.audio import AudioDecodeError, DecodedAudio, decode
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources.audio_store import AudioStore
from watchme_pipeline.resources.model_registry import LoadedModel, ModelRegistry
from watchme_pipeline.resources.result_store import ResultStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stages import StageSpec

# Slots decoded at once: a minute of 16 kHz audio is 3.8 MB, so a group stays small beside
# any model, and a stage's rows are written (and its statuses moved) group by group.
SLOTS_PER_GROUP = 8


@dataclass(frozen=True)
class ModelStage:
    """A model stage: its description (names, model kind, pod) and its own work."""

    spec: StageSpec
    description: str
    # The stage's model settings for a run (a frozen dataclass whose repr is part of the
    # code version; its batch size is set by the runner from the memory limit).
    model_settings: Callable[[PipelineSettings], Any]
    # (model, decoded audio by slot, model settings) -> the row fields of each slot.
    compute: Callable[[LoadedModel, dict[str, DecodedAudio], Any], dict[str, dict]]
    # (store, day, the stage's rows for the day) -> metadata; writes day-level tables.
    summarize: Callable[[ResultStore, DeviceDay, pd.DataFrame], dict] = lambda *_: {}
    version: str = "1"  # of the stage's own logic: part of its code version
    preview_columns: tuple[str, ...] = ("time_block",)
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"pytorch"}))

    @property
    def kind(self) -> str:
        assert self.spec.model_kind is not None
        return self.spec.model_kind

    def code_version(self, model_id: str, settings: PipelineSettings) -> str:
        """What makes its rows: stage logic, model (id or checksum) and model settings. After
        a change the UI shows the stage's partitions stale, and the next run redoes them."""
        return f"{self.version}|{model_id}|{self.model_settings(settings)!r}"


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


def slots_to_do(files: pd.DataFrame, rows: pd.DataFrame, spec: StageSpec, model_id: str,
                recompute: bool) -> pd.DataFrame:
    """The current recordings a stage must (re)compute: not completed, or completed by
    another model (or its row is missing), or all of them with ``recompute``. Recordings
    raw_audio found undecodable are left out: they are failed already, with the reason."""
    current = files[(files[spec.status_column] != "superseded") & files.decodes.astype(bool)]
    made_by = dict(zip(rows.time_block, rows.model))
    if recompute:
        return current
    stale = [status != "completed" or made_by.get(slot) != model_id
             for slot, status in zip(current.time_block, current[spec.status_column])]
    return current[stale] if len(current) else current


def run_model_stage(stage: ModelStage, day: DeviceDay, *, audio_store: AudioStore,
                    result_store: ResultStore, registry: ModelRegistry,
                    settings: PipelineSettings, log: logging.Logger | Any) -> dict[str, Any]:
    """Compute what the day still needs for ``stage``; return its figures (for metadata).

    A recording that cannot be decoded fails its own slot, recorded with the reason; an
    error of the model fails the slots of its group (with the reason) and is raised.
    """
    spec = stage.spec
    files = result_store.read("audio_files", day.device_id, day.date)
    model_id = registry.model_id(stage.kind)
    todo = slots_to_do(files, result_store.read(spec.table, day.device_id, day.date), spec,
                       model_id, settings.recompute)
    current = files[files[spec.status_column] != "superseded"]
    undecodable = current[~current.decodes.astype(bool)]
    figures: dict[str, Any] = {"slots_found": len(current),
                               "slots_skipped": len(current) - len(todo) - len(undecodable),
                               "slots_processed": 0, "slots_failed": 0, "model": model_id,
                               "model_loaded": False, "batch_size": 0, "audio_minutes": 0.0,
                               "stage_seconds": 0.0,
                               "failed_slots": dict(zip(undecodable.time_block,
                                                        undecodable.error))}
    if len(todo):
        loaded_before = stage.kind in registry.loaded_kinds()
        model = registry.get(stage.kind, settings.memory_mb)  # refuses at once if it can't fit
        figures["model_loaded"] = not loaded_before
        batch = registry.batch_size(stage.kind, settings.memory_mb,
                                    settings.batch_size(stage.kind))
        model_settings = dataclasses.replace(stage.model_settings(settings), batch_size=batch)
        figures["batch_size"] = batch
        records = list(todo.itertuples())
        for i in range(0, len(records), SLOTS_PER_GROUP):
            _run_group(stage, day, records[i:i + SLOTS_PER_GROUP], model, model_settings,
                       audio_store, result_store, figures)
    figures["slots_failed"] = len(figures["failed_slots"])
    for slot, reason in figures["failed_slots"].items():
        log.warning(f"{day}: slot {slot} failed ({spec.asset}): {reason}")
    audio_min = figures["audio_minutes"]
    figures["audio_minutes"] = round(audio_min, 2)
    figures["stage_seconds"] = round(figures["stage_seconds"], 2)
    figures["seconds_per_audio_minute"] = (round(figures["stage_seconds"] / audio_min, 2)
                                           if audio_min else 0.0)
    rows = result_store.read(spec.table, day.device_id, day.date)
    figures.update(stage.summarize(result_store, day, rows))
    figures["rows"] = rows
    return figures


def _run_group(stage: ModelStage, day: DeviceDay, records: list, model: LoadedModel,
               model_settings: Any, audio_store: AudioStore, result_store: ResultStore,
               figures: dict) -> None:
    spec = stage.spec
    audios: dict[str, DecodedAudio] = {}
    paths: dict[str, str] = {}
    for r in records:
        try:
            audios[r.time_block] = decode_recording(audio_store, r.file_path, r.speech_segments)
            paths[r.time_block] = r.file_path
        except AudioDecodeError as exc:
            figures["failed_slots"][r.time_block] = str(exc)
            result_store.set_status(day.device_id, [r.file_path], spec.status, "failed",
                                    str(exc))
    if not audios:
        return
    started = list(paths.values())
    result_store.set_status(day.device_id, started, spec.status, "processing")
    t0 = time.perf_counter()
    try:
        fields = stage.compute(model, audios, model_settings)
    except Exception as exc:
        result_store.set_status(day.device_id, started, spec.status, "failed",
                                f"{spec.asset}: {type(exc).__name__}: {exc}")
        raise
    figures["stage_seconds"] += time.perf_counter() - t0
    now = dt.datetime.now(dt.UTC)
    rows = [{"device_id": day.device_id, "date": day.date, "time_block": slot, **values,
             "model": model.model_id, "processed_at": now} for slot, values in fields.items()]
    result_store.replace_partition(spec.table, day.device_id, day.date, rows, only_keys=True)
    result_store.set_status(day.device_id, started, spec.status, "completed")
    figures["slots_processed"] += len(audios)
    figures["audio_minutes"] += sum(a.duration_s for a in audios.values()) / 60
