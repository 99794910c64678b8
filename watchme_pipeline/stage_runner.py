"""The loop every model stage shares, as plain Python: (stores, day, settings, log) in,
the day's figures out. The assets in ``assets/model_stages.py`` only wire it to Dagster.

A slot is done for a stage when its status is ``completed`` *and* its row was made by the
run's maker (``ModelStage.maker``: logic version, model and the settings that change the
output): after a model change, or in a run whose settings change the output (another
language), every slot is redone, without ``recompute``. Audio is
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
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"pytorch"}))

    @property
    def kind(self) -> str:
        assert self.spec.model_kind is not None
        return self.spec.model_kind

    def maker(self, model_id: str, settings: PipelineSettings) -> str:
        """What makes the stage's rows, as each row records it: stage logic, model (id or
        checksum, engine, runtime, precision) and the model settings that change the output
        (their repr leaves batch sizes out: they must not change results)."""
        return f"{self.spec.asset} v{self.version} {model_id} {self.model_settings(settings)!r}"


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


def slots_to_do(current: pd.DataFrame, rows: pd.DataFrame, spec: StageSpec, maker: str,
                recompute: bool) -> pd.DataFrame:
    """The current recordings a stage must (re)compute: not completed, or made by another
    maker (or its row is missing), or all of them with ``recompute``. Recordings raw_audio
    found undecodable are left out: they are failed already, with the reason."""
    decodable = current[current.decodes]
    if recompute:
        return decodable
    made_by = dict(zip(rows.time_block, rows.maker))
    stale = [status != "completed" or made_by.get(slot) != maker
             for slot, status in zip(decodable.time_block, decodable[spec.status_column])]
    return decodable[stale] if len(decodable) else decodable


@dataclass
class StageOutcome:
    """What one run of a stage did for one day: its figures, and the day's rows after it."""

    maker: str
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


def run_model_stage(stage: ModelStage, day: DeviceDay, *, audio_store: AudioStore,
                    result_store: ResultStore, registry: ModelRegistry,
                    settings: PipelineSettings, log: logging.Logger | Any) -> StageOutcome:
    """Compute what the day still needs for ``stage`` with this run's settings.

    A recording that cannot be decoded fails its own slot, recorded with the reason; an
    error of the model fails the slots of its group (with the reason) and is raised.
    """
    spec = stage.spec
    current = result_store.current_recordings(day.device_id, day.date)
    model_id = registry.model_id(stage.kind)
    maker = stage.maker(model_id, settings)
    todo = slots_to_do(current, result_store.stage_rows(spec, day.device_id, day.date), spec,
                       maker, settings.recompute)
    undecodable = current[~current.decodes]
    outcome = StageOutcome(maker=maker, model=model_id, slots_found=len(current),
                           slots_skipped=len(current) - len(todo) - len(undecodable),
                           failed_slots=dict(zip(undecodable.time_block, undecodable.error)),
                           rows=pd.DataFrame())
    if len(todo):
        loaded_before = stage.kind in registry.loaded_kinds()
        model = registry.get(stage.kind, settings.memory_mb)  # refuses at once if it can't fit
        outcome.model_loaded = not loaded_before
        outcome.batch_size = registry.batch_size(stage.kind, settings.memory_mb,
                                                 settings.batch_size(stage.kind))
        model_settings = dataclasses.replace(stage.model_settings(settings),
                                             batch_size=outcome.batch_size)
        records = list(todo.itertuples())
        for i in range(0, len(records), SLOTS_PER_GROUP):
            _run_group(stage, day, records[i:i + SLOTS_PER_GROUP], model, model_settings,
                       maker, audio_store, result_store, outcome)
    for slot, reason in outcome.failed_slots.items():
        log.warning(f"{day}: slot {slot} failed ({spec.asset}): {reason}")
    outcome.rows = result_store.stage_rows(spec, day.device_id, day.date)
    outcome.summary = stage.summarize(result_store, day, outcome.rows)
    return outcome


def _run_group(stage: ModelStage, day: DeviceDay, records: list, model: LoadedModel,
               model_settings: Any, maker: str, audio_store: AudioStore,
               result_store: ResultStore, outcome: StageOutcome) -> None:
    """Decode, compute and write one group of slots; add what it did to ``outcome``."""
    spec = stage.spec
    audios: dict[str, DecodedAudio] = {}
    paths: dict[str, str] = {}
    for r in records:
        try:
            audios[r.time_block] = decode_recording(audio_store, r.file_path, r.speech_segments)
            paths[r.time_block] = r.file_path
        except AudioDecodeError as exc:
            outcome.failed_slots[r.time_block] = str(exc)
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
    outcome.stage_seconds += time.perf_counter() - t0
    now = dt.datetime.now(dt.UTC)
    rows = [{"device_id": day.device_id, "date": day.date, "time_block": slot, **values,
             "model": model.model_id, "maker": maker, "processed_at": now}
            for slot, values in fields.items()]
    result_store.replace_partition(spec.table, day.device_id, day.date, rows, only_keys=True)
    result_store.set_status(day.device_id, started, spec.status, "completed")
    outcome.slots_processed += len(audios)
    outcome.audio_minutes += sum(a.duration_s for a in audios.values()) / 60
