"""A simulated fleet on moto's server (S3 and SQS on loopback, boto3 over HTTP): D devices'
history in the bucket, then a day's uploads arriving as S3's own notifications.

    python benchmarks/fleet.py [--devices 100] [--days 30] [--uploads 1000] [--groups 10]
                               [--moto-own-clock]

Prints: the queue sensor's tick draining the notifications with the history present and with
none (its time must not grow with history), the listing sensor's tick over the same bucket
(what the default mode costs), the runs each requests, group mode (WATCHME_DEVICE_GROUPS:
the same uploads as one run per group, one group run executed and its rows checked, the
partition count at 10,000 devices x 5 years), and one requested device-day run through
raw_audio with its rows checked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("WATCHME_MODEL_PROFILE", "tiny")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
import dagster as dg  # noqa: E402
from dagster_aws.s3 import S3Resource  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from watchme_pipeline.audio import SAMPLE_RATE  # noqa: E402
from watchme_pipeline.partitions import build_partitions  # noqa: E402
from watchme_pipeline.resources import S3AudioStore, SqlResultStore  # noqa: E402
from watchme_pipeline.resources.upload_queue import UploadQueue  # noqa: E402
from watchme_pipeline.sensors import build_new_audio_sensor  # noqa: E402
from watchme_pipeline.sensors.upload_queue import build_upload_queue_sensor  # noqa: E402
from watchme_pipeline.slots import SLOTS  # noqa: E402

PARTITIONS = build_partitions("Asia/Tokyo", "2025-01-01")
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "bench",
         "aws_secret_access_key": "bench"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_wav() -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sf.write(buf, (0.1 * np.sin(2 * np.pi * 220 * t)).astype("float32"), SAMPLE_RATE,
             format="WAV")
    return buf.getvalue()


def put_all(client, bucket: str, keys: list[str], body: bytes) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body), keys))
    return time.perf_counter() - t0


def queue_for(endpoint: str, name: str, bucket: str, s3) -> UploadQueue:
    sqs = boto3.client("sqs", endpoint_url=endpoint, **CREDS)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    return TimedQueue(queue_url=url, key_prefix="watchme", endpoint_url=endpoint, **CREDS)


class TimedQueue(UploadQueue):
    """The queue, with the time its SQS calls take (moto's ReceiveMessage is O(queue depth):
    measured 0.06 s at 20 messages, 0.4 s at 200, 1.1 s at 1,000; AWS's is not)."""

    def receive(self, max_messages: int = 10):
        t0 = time.perf_counter()
        try:
            return super().receive(max_messages)
        finally:
            SQS_SECONDS[0] += time.perf_counter() - t0

    def delete(self, messages):
        t0 = time.perf_counter()
        try:
            return super().delete(messages)
        finally:
            SQS_SECONDS[0] += time.perf_counter() - t0


SQS_SECONDS = [0.0]


def drain_by_ticks(queue: UploadQueue, store: SqlResultStore, instance,
                   partitions: dg.MultiPartitionsDefinition = PARTITIONS) -> dict:
    """Sensor ticks until the queue is empty, then one after the run delay: the burst of
    uploads lands within the delay, so each device-day (each group, in group mode) gets one
    run."""
    draining = build_upload_queue_sensor(partitions, "device_day_job", run_delay_s=10**6)
    after_delay = build_upload_queue_sensor(partitions, "device_day_job", run_delay_s=0)
    out = {"ticks": 0, "seconds": 0.0, "sqs_seconds": 0.0, "runs": 0, "files": 0,
           "slowest_tick": 0.0, "cpu_seconds": 0.0, "requests": []}
    drained = False
    while True:
        SQS_SECONDS[0] = 0.0
        with dg.build_sensor_context(instance=instance, resources={
                "upload_queue": queue, "result_store": store}) as context:
            t0, c0 = time.perf_counter(), time.thread_time()
            result = (after_delay if drained else draining)(context)
            took = time.perf_counter() - t0
            # The sensor thread's own CPU: moto's server threads share this process.
            out["cpu_seconds"] += time.thread_time() - c0
        out["ticks"] += 1
        out["seconds"] += took
        out["sqs_seconds"] += SQS_SECONDS[0]
        out["slowest_tick"] = max(out["slowest_tick"], took)
        out["runs"] += len(result.run_requests)
        out["requests"] += result.run_requests
        out["files"] += sum(int(r.tags["watchme/new_files"]) for r in result.run_requests)
        if drained:
            return out
        drained = SQS_SECONDS[0] < 0.5 and out["ticks"] > 1  # the queue came back empty


def group_mode(s3, s3_resource: S3Resource, endpoint: str, new: list[str], body: bytes,
               tmp: Path, run_delay_s: int, groups: int = 10) -> None:
    """The same day's uploads with WATCHME_DEVICE_GROUPS: one run per group and date, and one
    of them executed (raw_audio through Dagster, its run config as the sensor wrote it)."""
    from watchme_pipeline.assets import build_assets
    from watchme_pipeline.resources import ModelRegistry
    from watchme_pipeline.settings import PipelineSettings, launch_settings
    from watchme_pipeline.stage import Makers
    from watchme_pipeline.stages import raw_audio

    grouped = build_partitions("Asia/Tokyo", "2025-01-01", groups)
    bucket = "fleet-groups"
    s3.create_bucket(Bucket=bucket)
    queue = queue_for(endpoint, f"uploads-{bucket}", bucket, s3)
    put_all(s3, bucket, new, body)
    store = SqlResultStore(database_url=f"sqlite:///{tmp / 'groups.db'}")
    with dg.instance_for_test() as instance:
        out = drain_by_ticks(queue, store, instance, grouped)
        devices = {d for r in out["requests"]
                   for d in r.run_config["resources"]["settings"]["config"]["devices"]}
        print(f"group mode ({groups} groups): {len(new):,} notifications drained in "
              f"{out['ticks']} ticks; {out['runs']} runs requested (one per group and date) "
              f"for {out['files']} uploads of {len(devices)} devices; the sensor thread's CPU "
              f"{out['cpu_seconds']:.2f}s")
        request = max(out["requests"], key=lambda r: int(r.tags["watchme/new_files"]))
        audio = S3AudioStore(bucket=bucket, prefix="watchme", s3=s3_resource)
        t0 = time.perf_counter()
        result = dg.materialize(
            build_assets(grouped, Makers(ModelRegistry(), PipelineSettings(), "local"),
                         (raw_audio.STAGE,)), partition_key=request.partition_key,
            run_config=request.run_config, instance=instance,
            resources={"audio_store": audio, "result_store": store,
                       "settings": launch_settings(PipelineSettings())})
        took = time.perf_counter() - t0
    named = request.run_config["resources"]["settings"]["config"]["devices"]
    rows = sum(len(store.recordings(d, "2025-07-18")) for d in named)
    assert result.success and rows == int(request.tags["watchme/new_files"]), rows
    [event] = result.asset_materializations_for_node("raw_audio")
    print(f"one group run, {request.partition_key}: raw_audio registered {rows} rows for its "
          f"{len(named)} devices (= their uploads; metadata devices="
          f"{event.metadata['devices'].value}, recordings="
          f"{event.metadata['recordings'].value}) in {took:.1f}s")
    # Dagster's recommendation: at most 100,000 partitions per asset.
    five_years = build_partitions("Asia/Tokyo", "2021-12-02", 50)
    dates = len(five_years.get_partitions_def_for_dimension("date").get_partition_keys(
        current_time=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)))
    print(f"partitions per asset, 10,000 devices x 5 years ({dates:,} dates): per device "
          f"{dates * 10_000:,}; 50 groups {dates * 50:,} (<= 100,000); runs a day with 50 "
          f"groups and WATCHME_RUN_DELAY_S={run_delay_s}: at most "
          f"{50 * 86_400 // run_delay_s:,} = groups x (1,440 / {run_delay_s / 60:g} min), "
          f"{50 / run_delay_s:.2f} runs/s, whatever the number of devices")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--run-delay-s", type=int, default=180)
    parser.add_argument("--moto-own-clock", action="store_true",
                        help="keep moto's own SQS clock: its ReceiveMessage reads the clock "
                        "per queued message (2.4 million reads for 20 receives at depth "
                        "1,000), so a drain's wall time then measures moto, not the sensor; "
                        "by default moto's SQS gets time.time(), the same time, cheaper")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if not args.moto_own_clock:
        import moto.sqs.models as sqs_models

        def unix_time(at: dt.datetime | None = None) -> float:
            return time.time() if at is None else at.replace(tzinfo=dt.UTC).timestamp()

        sqs_models.unix_time = unix_time
        sqs_models.unix_time_millis = lambda at=None: unix_time(at) * 1000.0
        print("moto's SQS clock: time.time() (--moto-own-clock keeps moto's)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="fleet-"))
    try:
        s3_resource = S3Resource(endpoint_url=endpoint, **CREDS)
        s3 = s3_resource.get_client()
        devices = [f"dev-{d:05d}" for d in range(args.devices)]
        history = [f"watchme/files/{d}/{(dt.date(2025, 6, 1) + dt.timedelta(days=i))}/{s}/"
                   "audio.wav" for d in devices for i in range(args.days) for s in SLOTS]
        today = "2025-07-18"
        new = [f"watchme/files/{d}/{today}/{s}/audio.wav"
               for s in SLOTS for d in devices][:args.uploads]
        body = tiny_wav()
        figures = {}
        for label, bucket, with_history in (("warm-up", "fleet-warm-up", False),
                                            ("history", "fleet-history", True),
                                            ("no history", "fleet-empty", False)):
            s3.create_bucket(Bucket=bucket)
            if with_history:  # placed in moto's store directly: 144,000 PUTs take 20 min
                from moto.core import DEFAULT_ACCOUNT_ID
                from moto.s3.models import s3_backends

                backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
                for key in history:
                    backend.put_object(bucket, key, b"x")
                print(f"history: {len(history):,} keys ({args.devices} devices x {args.days} "
                      "days x 48)")
            queue = queue_for(endpoint, f"uploads-{bucket}", bucket, s3)
            # The warm-up pays the one-time costs (clients, imports, the first database).
            put_all(s3, bucket, new[:50] if label == "warm-up" else new, body)
            store = SqlResultStore(database_url=f"sqlite:///{tmp / (bucket + '.db')}")
            with dg.instance_for_test() as instance:
                out = drain_by_ticks(queue, store, instance)
            own = out["seconds"] - out["sqs_seconds"]
            figures[label] = out["cpu_seconds"]
            if label == "warm-up":
                continue
            print(f"queue sensor, {label}: {len(new):,} notifications drained in "
                  f"{out['ticks']} ticks, {out['seconds']:.1f}s (slowest tick "
                  f"{out['slowest_tick']:.1f}s), of which {out['sqs_seconds']:.1f}s waiting on "
                  f"moto's SQS calls and {own:.2f}s elsewhere; the sensor thread's CPU "
                  f"{out['cpu_seconds']:.2f}s; {out['runs']} runs requested for "
                  f"{out['files']} uploads (one per device-day)")
        ratio = figures["history"] / figures["no history"]
        print(f"the queue sensor's CPU with {len(history):,} keys of history / without: "
              f"{ratio:.2f}x")

        store = S3AudioStore(bucket="fleet-history", prefix="watchme", s3=s3_resource)
        listing = build_new_audio_sensor(PARTITIONS)
        # Its one read of the result store: the audit, for the tick's devices (forgotten?).
        listing_results = SqlResultStore(database_url=f"sqlite:///{tmp / 'listing.db'}")
        with dg.instance_for_test() as instance:
            cursor, took, steady, known_before = None, [], False, 0
            while not steady:  # every device listed whole once (30 s a tick), then one more
                with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                             cursor=cursor, resources={
                                                 "audio_store": store,
                                                 "result_store": listing_results}) as context:
                    t0 = time.perf_counter()
                    result = listing(context)
                    took.append(time.perf_counter() - t0)
                steady = known_before == args.devices if cursor else False
                known_before = len(json.loads(result.cursor)["newest"])
                cursor = result.cursor
        print(f"listing sensor (no queue) over the same bucket ({len(history) + len(new):,} "
              f"keys): {len(took) - 1} ticks to list every device whole once (slowest "
              f"{max(took[:-1]):.1f}s), then a steady tick {took[-1]:.1f}s ({args.devices} "
              "device folders from 2 days before their newest date; moto scans the bucket for "
              "each listing); at most 20 runs a tick")

        group_mode(s3, s3_resource, endpoint, new, body, tmp, args.run_delay_s, args.groups)

        # One requested device-day through raw_audio: its rows are the uploads, once each.
        from watchme_pipeline.partitions import DeviceDay
        from watchme_pipeline.stages.raw_audio import find_recordings

        day = DeviceDay(devices[0], today)
        results = SqlResultStore(database_url=f"sqlite:///{tmp / 'run.db'}")
        from zoneinfo import ZoneInfo

        t0 = time.perf_counter()
        df, _ = find_recordings(store, results, day, ZoneInfo("Asia/Tokyo"), logging.getLogger())
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again, _ = find_recordings(store, results, day, ZoneInfo("Asia/Tokyo"),
                                   logging.getLogger())
        second = time.perf_counter() - t0
        rows = results.recordings(day.device_id, day.date)
        expected = sum(1 for k in new if f"/{devices[0]}/" in k)
        assert len(rows) == expected and rows.file_path.is_unique, (len(rows), expected)
        print(f"raw_audio for {day}: {len(rows)} rows (= its uploads), {first:.2f}s; the next "
              f"run {second:.2f}s, {int(again.read.sum())} files read again")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
