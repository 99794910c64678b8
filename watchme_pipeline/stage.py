"""What a stage declares: everything particular to one asset of the graph, in one object.

A stage module (``stages/*.py``) defines its tables and one ``Stage``; the list in
``stages/__init__.py`` is the graph. The assets, the job, the status columns of
``audio_files``, the step pods' memory, the CLI's summary, the demo's day table and the docs'
stage table are all derived from that list (``assets/``, ``stages/raw_audio.py``,
``deployment.py``, ``demo.py``, ``docs.py``).

Two shapes of work:

* a **slot stage** (``compute`` set) makes one row per slot in its first table. The shared
  runner (``stage_runner.run_slot_stage``) finds the slots still to do (not completed, or made
  by another maker), reads their inputs (decoded audio unless the stage says otherwise), calls
  ``compute`` a few slots at a time with the stage's model (if it has one), writes the rows and
  moves the slots' statuses;
* a **day stage** (``run_day`` set) does its own work for one device-day (raw_audio lists and
  registers the recordings; vibe_prompt and mood_chart aggregate the day).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    import logging

    import pandas as pd

    from watchme_pipeline.partitions import DeviceDay, GroupDay
    from watchme_pipeline.resources import AudioStore, ModelRegistry, MoodScorer
    from watchme_pipeline.settings import PipelineSettings
    from watchme_pipeline.store import ResultStore

# What a step's process holds before any stage work: Python, Dagster, pandas, SQLAlchemy
# (make bench's "imports" figure, benchmarks/results/latest.json).
BASE_PROCESS_MB = 190
# Over the estimate, for what the estimate does not see (allocator slack; make bench measured
# the model steps' peaks 3-9 % over the registry's estimates).
POD_HEADROOM = 1.10


class NotRetried(Exception):  # noqa: N818 (a mixin: the errors that carry it are named)
    """A fault of the input or the configuration, not a transient one: the asset fails at once
    (``dg.Failure(allow_retries=False)``), naming it, and Dagster does not retry the step."""


@dataclass(frozen=True)
class Makers:
    """What the deployment makes results with, for the stages' code versions."""

    registry: ModelRegistry
    settings: PipelineSettings
    scorer: str  # the mood scorer's name


@dataclass
class StageRun:
    """One step of a stage: the resources it asked for, the run's log and code version."""

    log: logging.Logger | Any
    code_version: str
    settings: PipelineSettings
    result_store: ResultStore
    timezone: str = "UTC"  # the devices' local day (the partitions')
    audio_store: AudioStore | None = None
    model_registry: ModelRegistry | None = None
    mood_scorer: MoodScorer | None = None
    memory_source: str = "WATCHME_MEMORY_MB"  # where settings.memory_mb was set, for errors


@dataclass
class DayWork:
    """What a slot stage's ``after_day`` is given: the day, its rows after the run, the stores
    and the model (loaded on first use, within the run's memory limit)."""

    day: DeviceDay
    rows: pd.DataFrame
    result_store: ResultStore
    audio_store: AudioStore | None
    model: Callable[[], Any]
    log: logging.Logger | Any


@dataclass(frozen=True)
class Voices:
    """Who spoke where in a device-day, for the stages that tell the wearer from others: by
    slot, the turns of each speaker (``wearer``, ``other``; samples), and what attributed
    them (in the maker of the rows made from them). ``attributed`` False: the device has no
    profile yet, and every slot's speech is heard as before."""

    maker: str
    attributed: bool = False
    turns: dict[str, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One asset of the graph and everything particular to it."""

    name: str  # the Dagster asset
    tables: tuple[sa.Table, ...]  # what it writes; the first holds its rows
    description: str
    version: str = "1"  # of the stage's own logic: part of its code version and row makers
    deps: tuple[str, ...] = ()  # the stages it reads; a slot stage: raw_audio when none
    role: str | None = None  # the asset's `stage` tag; None: model, slots or aggregate
    kinds: frozenset[str] | None = None  # the catalog's kind tags; None: pytorch or python
    resources: frozenset[str] = frozenset({"result_store", "settings"})
    # Slot stages: (model or None, inputs by slot, model settings) -> row fields by slot.
    compute: Callable[[Any, dict[str, Any], Any], dict[str, dict]] | None = None
    model_kind: str | None = None  # the ModelRegistry kind it loads, if any
    status: str | None = None  # audio_files.{status}_status, if it keeps one per recording
    # The settings that change its output (a frozen dataclass whose repr is in the maker);
    # a model stage's has a batch_size the runner sets from the memory limit.
    model_settings: Callable[[PipelineSettings], Any] = lambda settings: None
    # What compute reads per slot: None reads the recordings' decoded audio; else
    # (result store, day, slots) -> the input of each slot.
    inputs: Callable[[ResultStore, DeviceDay, list[str]], dict[str, Any]] | None = None
    # (store, day, the stage's rows for the day) -> metadata; may write day-level tables.
    summarize: Callable[[ResultStore, DeviceDay, pd.DataFrame], dict] = lambda *_: {}
    # Day stages: (the step, a device-day) -> the partition's metadata (counts only).
    run_day: Callable[[StageRun, DeviceDay], dict[str, Any]] | None = None
    # Group mode, when a run names no devices: (the step) -> (partition, N) -> its devices.
    # None: the group's devices with recordings registered for the date.
    devices_of_group: Callable[[StageRun], Callable[[GroupDay, int], list[str]]] | None = None
    code_version_of: Callable[[Makers], str] | None = None  # None: ``maker`` (slot stages)
    automatic: bool = False  # re-materialized when an upstream partition changes
    # Slot stages: its column in the demo's day table: (heading, width, a row -> its text).
    slot_view: tuple[str, int, Callable[[Any], str]] | None = None
    # Slot stages: day-level work after the slots (speakers: the profile and who spoke);
    # returns figures for the partition's metadata.
    after_day: Callable[[DayWork], dict[str, Any]] | None = None
    # Slot stages that tell the wearer from others: (store, day) -> Voices, given to compute
    # as each audio's ``speakers``; their rows' maker names what attributed the speech, so a
    # new profile remakes them.
    voices: Callable[[ResultStore, DeviceDay], Voices] | None = None
    working_mb: int = 60  # what its work holds beside the base process and its model

    def __post_init__(self) -> None:
        if (self.compute is None) == (self.run_day is None):
            raise ValueError(f"stage {self.name}: give compute (a slot stage) or run_day "
                             "(a day stage), not both")

    @property
    def table(self) -> sa.Table:
        return self.tables[0]

    @property
    def status_column(self) -> str:
        if self.status is None:
            raise ValueError(f"{self.name} keeps no status per recording")
        return f"{self.status}_status"

    @property
    def upstream(self) -> tuple[str, ...]:
        """The stages it reads: its ``deps``, or for a slot stage the recordings' ledger (every
        slot stage starts from the recordings raw_audio registered)."""
        return self.deps or (("raw_audio",) if self.compute is not None else ())

    @property
    def tag(self) -> str:
        """ingest, model, slots (a slot stage without a model) or aggregate (a day stage)."""
        return self.role or ("model" if self.model_kind else
                             "slots" if self.compute else "aggregate")

    @property
    def kind_tags(self) -> frozenset[str]:
        """What the catalog shows it runs on (the stores it touches are added at build)."""
        if self.kinds is not None:
            return self.kinds
        return frozenset({"pytorch" if self.model_kind else "python"})

    @property
    def reads_audio(self) -> bool:
        return self.compute is not None and self.inputs is None

    @property
    def resource_keys(self) -> frozenset[str]:
        """The resources its step needs (what ``StageRun`` is given)."""
        keys = set(self.resources)
        if self.reads_audio:
            keys.add("audio_store")
        if self.model_kind:
            keys.add("model_registry")
        return frozenset(keys)

    def maker(self, registry: ModelRegistry | None, settings: PipelineSettings) -> str:
        """What makes a slot stage's rows, as each row records it: stage logic, model (id or
        checksum, engine, runtime, precision) and the settings that change the output (their
        repr leaves batch sizes out: they must not change results)."""
        model = registry.model_id(self.model_kind) if self.model_kind and registry else "-"
        return f"{self.name} v{self.version} {model} {self.model_settings(settings)!r}"

    def code_version(self, makers: Makers) -> str:
        """Dagster's code version: the deployment's maker, so a model or setting change of the
        deployment shows the stage's partitions stale."""
        if self.code_version_of is not None:
            return self.code_version_of(makers)
        if self.compute is None:
            return self.version
        return self.maker(makers.registry, makers.settings)

    def memory_mb(self) -> int:
        """What its step's process needs: the base process, its model's need (the registry's
        estimate for the standard checkpoint: runtime, weights, one batch item) and its own
        work; the step pod's request (``deployment.pod_tags``)."""
        need = BASE_PROCESS_MB + self.working_mb
        if self.model_kind:
            from watchme_pipeline.resources.model_registry import standard_need_mb

            need += standard_need_mb(self.model_kind)
        return int(math.ceil(need * POD_HEADROOM / 50) * 50)
