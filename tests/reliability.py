"""The fault and bad-input campaign: device-days through the whole graph while faults are
injected, then the invariants. Used by tests/test_reliability.py (short) and
benchmarks/reliability.py (`make reliability`)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
from faultproxy import FaultProxy
from pg import PostgresCluster

from watchme_pipeline import schema
from watchme_pipeline.assets import build_assets
from watchme_pipeline.partitions import DeviceDay, build_partitions
from watchme_pipeline.resources import (
    LocalAudioStore,
    LocalMoodScorer,
    ModelRegistry,
    S3AudioStore,
    SqlResultStore,
    TimedS3Resource,
)
from watchme_pipeline.sample_data import write_sample_day
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import parse_key
from watchme_pipeline.stage import Makers
from watchme_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
DATE = "2025-07-18"
# Tiny models need speech-like audio, not words: the cheap voices (the neural one is for the
# real-weight tests and the demo).
TEST_VOICES = ("espeak-ng", "synthetic")
# In-process runs share one process (pytest's, or the campaign's) that keeps what earlier runs
# loaded, so the run-process limit (WATCHME_MEMORY_MB) would count their memory too: it is
# tested where a run has a process of its own (test_webserver_e2e, test_model_registry).
SHARED_PROCESS_MEMORY_MB = 16_000
ALL_ASSETS = build_assets(build_partitions("Asia/Tokyo", "2025-01-01"),
                          Makers(ModelRegistry(profile="tiny"), PipelineSettings(),
                                 LocalMoodScorer().name()))
# Every stage's tables but the recordings' ledger (checked on its own), from the list.
RESULT_TABLES = [t.name for s in STAGES[1:] for t in s.tables]
SECRETS = {"AWS_SECRET_ACCESS_KEY": "aws-secret-FAKE-9f8e7d", "OPENAI_API_KEY": "sk-FAKE-42xyz",
           "SUPABASE_KEY": "supabase-FAKE-key-77", "DB_PASSWORD": "pg-FAKE-pass-31"}


@dataclass
class Outcome:
    scenario: str
    injections: int = 0
    runs: int = 0
    recordings_in: int = 0
    rows_out: int = 0
    lost: int = 0
    duplicated: int = 0
    failed_with_reason: int = 0
    recovered: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class World:
    """One scenario's stores, models and instance."""

    tmp: Path
    audio: object
    results: SqlResultStore
    models: Path
    instance: dg.DagsterInstance
    uploads: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def resources(self) -> dict:
        return {"audio_store": self.audio, "result_store": self.results,
                "model_registry": ModelRegistry(profile="tiny", cache_dir=str(self.models)),
                "mood_scorer": LocalMoodScorer(),
                "settings": PipelineSettings(memory_mb=SHARED_PROCESS_MEMORY_MB)}

    def upload_day(self, device: str, date: str = DATE, seconds: float = 6) -> None:
        day = write_sample_day(self.audio, device, date, seconds=seconds, voices=TEST_VOICES)
        self.uploads[(device, date)] = {k for keys in day.keys.values() for k in keys}

    def run(self, device: str, date: str = DATE, **kwargs) -> dg.ExecuteInProcessResult:
        if device not in self.instance.get_dynamic_partitions("devices"):
            self.instance.add_dynamic_partitions("devices", [device])
        return dg.materialize(ALL_ASSETS, partition_key=str(DeviceDay(device, date)
                                                             .partition_key),
                              resources=self.resources(), instance=self.instance,
                              raise_on_error=False, **kwargs)


def check(world: World, outcome: Outcome, expect_failed: set[str] = frozenset()) -> Outcome:
    """The invariants after a scenario (and its recovery run)."""
    for (device, date), keys in world.uploads.items():
        files = world.results.read("audio_files", device, date)
        outcome.recordings_in += len(keys)
        outcome.rows_out += len(files)
        counts = files.file_path.value_counts()
        outcome.lost += sum(1 for k in keys if counts.get(k, 0) == 0)
        outcome.duplicated += int((counts - 1).clip(lower=0).sum())
        for stage in ("transcriptions", "behavior_features", "emotion_features"):
            stuck = files[files[f"{stage}_status"].isin(["pending", "processing"])]
            if len(stuck):
                outcome.problems.append(f"{device} {stage}: {len(stuck)} not settled")
            failed = files[files[f"{stage}_status"] == "failed"]
            if failed.error.isna().any() or (failed.error == "").any():
                outcome.problems.append(f"{device} {stage}: failed without a reason")
        outcome.failed_with_reason += int((files.transcriptions_status == "failed").sum())
        unexpected = set(files[files.transcriptions_status == "failed"].file_path) - expect_failed
        if unexpected:
            outcome.problems.append(f"unexpected failures: {sorted(unexpected)[:3]}")
        for table in RESULT_TABLES:
            df = world.results.read(table, device, date)
            # A row is one per key: the table's primary key within the device-day.
            keys_cols = [c.name for c in schema.table(table).primary_key
                         if c.name not in ("device_id", "date")]
            dup = int(df.duplicated(keys_cols).sum()) if keys_cols else max(0, len(df) - 1)
            outcome.duplicated += dup
            for col in df.select_dtypes("number").columns:
                if np.isinf(df[col].astype(float)).any():
                    outcome.problems.append(f"{table}.{col} holds infinity")
        summary = world.results.read("vibe_whisper_summary", device, date)
        if summary.empty:
            outcome.problems.append(f"{device} {date}: no mood chart")
        elif any(isinstance(v, float) and math.isnan(v) for v in summary.iloc[0].vibe_scores):
            outcome.problems.append("NaN in vibe_scores")
    return outcome


def new_world(root: Path, models: Path, audio=None, results: SqlResultStore | None = None
              ) -> World:
    root.mkdir(parents=True, exist_ok=True)
    return World(tmp=root, audio=audio or LocalAudioStore(root=str(root / "audio")),
                 results=results or SqlResultStore(database_url=f"sqlite:///{root / 'r.db'}"),
                 models=models, instance=dg.DagsterInstance.ephemeral())


def uploaded_world(root: Path, models: Path, store, prefix: str, days: int) -> World:
    """A world whose store holds the sample day of devices {prefix}-0 .. {prefix}-{days-1}."""
    world = new_world(root, models, audio=store)
    for d in range(days):
        world.upload_day(f"{prefix}-{d}")
    return world


# -- scenarios -------------------------------------------------------------------------------

@contextlib.contextmanager
def moto_behind_proxy(bucket: str, read_timeout_s: float = 20.0):
    """moto's S3 server on loopback, a bucket in it, and a FaultProxy in front.

    Yields (store straight to moto for uploads, store through the proxy, proxy)."""
    from conftest import free_port
    from dagster_aws.s3 import S3Resource
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    proxy = FaultProxy(port)
    try:
        direct = S3Resource(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")
        direct.get_client().create_bucket(Bucket=bucket)
        via_proxy = S3AudioStore(bucket=bucket, s3=TimedS3Resource(
            endpoint_url=f"http://127.0.0.1:{proxy.port}", region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="x", max_attempts=6,
            read_timeout_s=read_timeout_s, connect_timeout_s=2.0))
        yield S3AudioStore(bucket=bucket, s3=direct), via_proxy, proxy
    finally:
        proxy.close()
        server.stop()


def s3_faults(root: Path, models: Path, days: int) -> Outcome:
    """Connection resets on listings and reads, and a read cut mid-body, in front of moto."""
    with moto_behind_proxy("faults") as (upload, via_proxy, proxy):
        world = uploaded_world(root, models, upload, "s3", days)
        world.audio = via_proxy
        outcome = Outcome("S3 resets, 503s, cut reads")
        for d in range(days):
            proxy.faults.reset_connections = 3
            proxy.faults.http_503_connections = 2  # then throttling answers
            proxy.faults.cut_after_bytes = 3000  # a response cut in the middle of a body
            result = world.run(f"s3-{d}")
            outcome.runs += 1
            if not result.success:  # exhausted retries: a fresh run completes the rest
                world.run(f"s3-{d}")
                outcome.runs += 1
                outcome.recovered += 1
            retried = sum(1 for e in result.all_events if e.event_type_value == "STEP_RESTARTED")
            outcome.recovered += retried
        outcome.injections = sum(proxy.faults.injected.values())
        return check(world, outcome, expect_failed=_corrupt(world))


# A sensor tick killed (SIGKILL) after it noted its first batch of uploads and before it
# deleted their messages. argv: the UploadQueue as JSON, the result store URL, the dates.
KILLED_TICK = """
import os, signal, sys
from watchme_pipeline.resources import SqlResultStore
from watchme_pipeline.resources.upload_queue import UploadQueue
from watchme_pipeline.sensors.upload_queue import drain_queue

class KilledBeforeDelete(UploadQueue):
    def delete(self, messages):
        os.kill(os.getpid(), signal.SIGKILL)

queue = KilledBeforeDelete.model_validate_json(sys.argv[1])
drain_queue(queue, SqlResultStore(database_url=sys.argv[2]), set(sys.argv[3].split(",")))
"""


def kill_a_tick_between_noting_and_deleting(queue, database_url: str, dates: set[str]) -> int:
    """Run KILLED_TICK in a process of its own; its exit code (-9 when the kill landed)."""
    config = queue.model_dump_json(exclude_none=True)
    return subprocess.run([sys.executable, "-c", KILLED_TICK, config, database_url,
                           ",".join(sorted(dates))], cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode


def queue_notifications(root: Path, models: Path, days: int) -> Outcome:
    """Uploads from moto's own S3 notifications through SQS, every one duplicated and the lot
    re-ordered, a sensor tick killed between noting and deleting; then the sensor's runs."""
    import random

    import boto3

    from watchme_pipeline.resources.upload_queue import UploadQueue
    from watchme_pipeline.sensors.upload_queue import build_upload_queue_sensor

    outcome = Outcome("S3 notifications: duplicated, re-ordered, tick killed before delete")
    with moto_behind_proxy("queue") as (upload, _, _):
        endpoint = upload.s3.endpoint_url
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        upload.client.put_bucket_notification_configuration(
            Bucket=upload.bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        queue = UploadQueue(queue_url=url, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x",
                            visibility_timeout_s=2)
        devices = max(days, 2)
        world = uploaded_world(root, models, upload, "q", devices)  # S3 notifies each upload
        bodies = []
        while batch := queue.receive(10):  # read once (they come back after 2 s) ...
            bodies += [m.body for m in batch]
        random.Random(3).shuffle(bodies)
        for start in range(0, len(bodies), 10):  # ... and sent again: each one twice
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])])
        outcome.injections += len(bodies)
        time.sleep(2.5)
        if kill_a_tick_between_noting_and_deleting(queue, world.results.database_url,
                                                   {DATE}) == -signal.SIGKILL:
            outcome.injections += 1
        time.sleep(2.5)  # what the killed tick took comes back
        sensor = build_upload_queue_sensor(build_partitions("Asia/Tokyo", "2025-01-01"),
                                           "device_day_job", run_delay_s=0)
        requested: list[str] = []
        for _ in range(20):
            with dg.build_sensor_context(instance=world.instance, resources={
                    "upload_queue": queue, "result_store": world.results}) as context:
                result = sensor(context)
            requested += [str(r.partition_key) for r in result.run_requests]
            if not result.run_requests and not queue.receive(1):
                break
            time.sleep(2.5)
        if sorted(requested) != sorted(f"{DATE}|q-{d}" for d in range(devices)):
            outcome.problems.append(f"runs requested {sorted(requested)}: expected one per "
                                    "device-day")
        for partition in requested:
            world.run(partition.split("|")[1])
            outcome.runs += 1
        return check(world, outcome, expect_failed=_corrupt(world))


def s3_stalls(root: Path, models: Path, days: int) -> Outcome:
    """A request that is never answered and a body that stops mid-transfer: the client times
    out after read_timeout_s and reads again (botocore for the request, the store for the
    body)."""
    with moto_behind_proxy("stalls", read_timeout_s=1.0) as (upload, via_proxy, proxy):
        world = uploaded_world(root, models, upload, "stall", days)
        world.audio = via_proxy
        outcome = Outcome("S3 stalled reads, time-out")
        for d in range(days):
            proxy.faults.stall_connections = 1  # the listing's request: never answered
            # The first connection to pass 100 kB goes silent: in the middle of an audio body.
            proxy.faults.stall_after_bytes = 100_000
            started = time.monotonic()
            result = world.run(f"stall-{d}")
            outcome.runs += 1
            if not result.success:
                outcome.problems.append(f"stalled run failed: {failures(result)}")
            if time.monotonic() - started > 60:
                outcome.problems.append("a stall was not cut short by the read time-out")
        outcome.injections = proxy.faults.injected["stall"] + proxy.faults.injected["stall_body"]
        outcome.recovered = outcome.injections if not outcome.problems else 0
        return check(world, outcome, expect_failed=_corrupt(world))


class DeletingStore(LocalAudioStore):
    """Deletes one object just before its first read: deleted between listing and reading."""

    doomed: str

    def read(self, key: str) -> bytes:
        if key == self.doomed:
            Path(self._path(key)).unlink(missing_ok=True)
        return super().read(key)


def deleted_object(root: Path, models: Path, days: int) -> Outcome:
    world = new_world(root, models)
    world.upload_day("del-0")
    doomed = next(k for k in sorted(world.uploads[("del-0", DATE)]) if "/10-00" in k)
    world.audio = DeletingStore(root=str(root / "audio"), doomed=doomed)
    outcome = Outcome("S3 object deleted before read", injections=1)
    result = world.run("del-0")
    outcome.runs = 1
    files = world.results.read("audio_files", "del-0", DATE).set_index("file_path")
    if not (result.success and "deleted from the audio store" in str(files.loc[doomed].error)):
        outcome.problems.append("the deleted object did not fail its slot with a reason")
    return check(world, outcome, expect_failed=_corrupt(world) | {doomed})


def pg_restart(root: Path, models: Path, days: int, cluster: PostgresCluster) -> Outcome:
    """The PostgreSQL server restarted in the middle of a run."""
    url = cluster.create_database(f"restart_{int(time.time() * 1000) % 10**8}")
    world = new_world(root, models, results=SqlResultStore(database_url=url))
    outcome = Outcome("PostgreSQL restart mid-run")
    for d in range(days):
        world.upload_day(f"pg-{d}")
        done = threading.Event()

        def restart_when_processing(device=f"pg-{d}", done=done):
            deadline = time.time() + 120
            while time.time() < deadline and not done.is_set():
                try:
                    files = world.results.read("audio_files", device, DATE)
                    if len(files) and (files.transcriptions_status != "pending").any():
                        cluster.restart()
                        outcome.injections += 1
                        return
                except Exception:
                    pass
                time.sleep(0.2)

        watcher = threading.Thread(target=restart_when_processing)
        watcher.start()
        result = world.run(f"pg-{d}")
        done.set()
        watcher.join()
        outcome.runs += 1
        if not result.success:
            world.run(f"pg-{d}")
            outcome.runs += 1
            outcome.recovered += 1
        outcome.recovered += sum(1 for e in result.all_events
                                 if e.event_type_value == "STEP_RESTARTED")
    return check(world, outcome, expect_failed=_corrupt(world))


def pg_cut_mid_write(root: Path, models: Path, days: int, cluster: PostgresCluster) -> Outcome:
    """The database connection cut in the middle of a write: old rows or new, never half."""
    url = cluster.create_database(f"cut_{int(time.time() * 1000) % 10**8}")
    proxy = FaultProxy(cluster.port)
    try:
        proxied = url.replace(f":{cluster.port}/", f":{proxy.port}/")
        world = new_world(root, models, results=SqlResultStore(database_url=proxied))
        outcome = Outcome("PostgreSQL cut mid-write")
        world.upload_day("cut-0")
        assert world.run("cut-0").success
        outcome.runs = 1
        before = world.results.read("vibe_whisper", "cut-0", DATE)
        rows = [{**r, "transcription": "NEW"} for r in before.to_dict("records")]
        proxy.faults.cut_all_after_sent = 1500  # inside the INSERT of 37 rows
        try:
            world.results.replace_partition("vibe_whisper", "cut-0", DATE, rows)
            outcome.problems.append("the cut did not interrupt the write")
        except Exception:
            pass
        outcome.injections = proxy.faults.injected["cut"]
        after = world.results.read("vibe_whisper", "cut-0", DATE)
        if set(after.transcription) & {"NEW"}:
            outcome.problems.append("half a write is visible after the cut")
        world.results.replace_partition("vibe_whisper", "cut-0", DATE, rows)  # the retry
        if set(world.results.read("vibe_whisper", "cut-0", DATE).transcription) != {"NEW"}:
            outcome.problems.append("the retried write did not land")
        else:
            outcome.recovered = 1
        return check(world, outcome, expect_failed=_corrupt(world))
    finally:
        proxy.close()


# The run process of the device-day job. With KILL_TABLES set it kills itself with SIGKILL
# inside the first write to one of those tables: after the statement, before the commit (the
# middle of the asset that owns the table), after naming the table in KILL_MARK. With
# PARENT_RUN_ID set it re-executes that run from failure (Dagster's re-execution).
KILL_SCRIPT = """
import dagster as dg, os, signal
from watchme_pipeline.definitions import device_day_job_from_env
from watchme_pipeline.store import gateway
targets = set(filter(None, os.environ.get("KILL_TABLES", "").split(",")))
upsert = gateway.SqlGateway.upsert
def dying(self, table, rows, *args, **kwargs):
    if not (table.name in targets and rows):
        return upsert(self, table, rows, *args, **kwargs)
    with self.atomic():  # killed after the statement, before its transaction commits
        upsert(self, table, rows, *args, **kwargs)
        with open(os.environ["KILL_MARK"], "a") as mark:
            mark.write(table.name + "\\n")
        os.kill(os.getpid(), signal.SIGKILL)
gateway.SqlGateway.upsert = dying
instance = dg.DagsterInstance.get()
device, partition = os.environ["KILL_DEVICE"], os.environ["KILL_PARTITION"]
instance.add_dynamic_partitions("devices", [device])
parent = os.environ.get("PARENT_RUN_ID")
dg.execute_job(
    dg.reconstructable(device_day_job_from_env), instance=instance,
    tags={"dagster/partition": partition, "dagster/partition/date": partition.split("|")[0],
          "dagster/partition/device": device},
    reexecution_options=dg.ReexecutionOptions.from_failure(parent, instance) if parent else None)
"""

# Each asset and the table it writes: the kill lands in the middle of every one of them.
KILL_POINTS = {s.table.name: s.name for s in STAGES}


def sigkill(root: Path, models: Path, days: int) -> Outcome:
    """The run process killed with SIGKILL in the middle of each asset in turn, each time
    re-executed from failure (the re-execution is killed in the next asset), then a last
    re-execution and a fresh run complete the day without changing what was done."""
    outcome = Outcome("SIGKILL in each asset, re-execution")
    home = root / "dagster_home"
    home.mkdir(parents=True)
    data = root / "data"
    (data / "models").mkdir(parents=True)
    for name in os.listdir(models):
        os.symlink(models / name, data / "models" / name)
    world = new_world(data, models, audio=LocalAudioStore(root=str(data / "audio")),
                      results=SqlResultStore(database_url=f"sqlite:///{data / 'watchme.db'}"))
    mark = root / "killed.txt"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for d in range(days):
            device = f"kill-{d}"
            world.upload_day(device)
            env = {**os.environ, "DAGSTER_HOME": str(home), "WATCHME_DATA_DIR": str(data),
                   "WATCHME_MODEL_PROFILE": "tiny", "WATCHME_DEPLOYMENT": "local",
                   "KILL_DEVICE": device, "KILL_PARTITION": f"{DATE}|{device}",
                   "KILL_MARK": str(mark)}
            for var in ("WATCHME_AUDIO_STORE", "WATCHME_DATABASE_URL"):
                env.pop(var, None)
            left, parent = dict(KILL_POINTS), ""
            while True:
                mark.unlink(missing_ok=True)
                before = {t: len(world.results.read(t, device, DATE)) for t in left}
                proc = subprocess.run(
                    [sys.executable, "-c", KILL_SCRIPT], capture_output=True, text=True,
                    env={**env, "KILL_TABLES": ",".join(left), "PARENT_RUN_ID": parent},
                    timeout=600)
                outcome.runs += 1
                run = instance.get_runs(limit=1)[0]
                if not left:  # the last re-execution, nothing to kill
                    if proc.returncode != 0 or run.status != dg.DagsterRunStatus.SUCCESS:
                        outcome.problems.append(f"{device}: last re-execution {run.status}: "
                                                f"{proc.stderr[-500:]}")
                    break
                if proc.returncode != -signal.SIGKILL or not mark.exists():
                    outcome.problems.append(f"{device}: not killed in {sorted(left)} "
                                            f"(rc {proc.returncode}) {proc.stderr[-500:]}")
                    break
                table = mark.read_text().strip()
                outcome.injections += 1
                if len(world.results.read(table, device, DATE)) != before[table]:
                    outcome.problems.append(f"{device}: the killed write to {table} left rows")
                del left[table]
                # No daemon here: mark the dead run failed, as run monitoring would.
                instance.report_run_failed(instance.get_run_by_id(run.run_id))
                parent = run.run_id
        if not outcome.problems:
            outcome.recovered = outcome.injections
    killed = world.uploads
    fresh = [world.run(device) for device, _ in killed]  # and a fresh run changes nothing
    outcome.runs += len(fresh)
    if not all(r.success for r in fresh):
        outcome.problems.append("fresh run after recovery failed")
    return check(world, outcome, expect_failed=_corrupt(world))


# Dagster's own crash points in the sensor daemon (dagster._daemon.sensor), all between
# computing a tick (run requests and cursor) and storing the cursor in the sensor's state.
SENSOR_CRASH_POINTS = ["RUN_IDS_RESERVED", "RUN_CREATED", "RUN_LAUNCHED"]
SENSOR = "new_audio_sensor"


def sensor_daemon_tick(home: str, grpc_port: int, env: dict, now: float,
                       crash_point: str | None) -> None:
    """One sensor-daemon iteration in this (spawned) process, as `dagster-daemon` runs it,
    against the code server on grpc_port; with crash_point, Dagster's debug crash flag sends
    this process SIGKILL there (the method of Dagster's own sensor crash-recovery tests)."""
    os.environ.update(env)
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.workspace.load_target import GrpcServerTarget
    from dagster._daemon import get_default_daemon_logger
    from dagster._daemon.sensor import execute_sensor_iteration
    target = GrpcServerTarget(host="127.0.0.1", port=grpc_port, socket=None,
                              location_name="watchme")
    with dg.DagsterInstance.from_config(home) as instance, freeze_time(now), \
            create_test_daemon_workspace_context(target, instance) as workspace:
        location = next(iter(workspace.create_request_context()
                             .get_code_location_entries().values())).code_location
        sensor = next(iter(location.get_repositories().values())).get_sensor(SENSOR)
        state = instance.get_instigator_state(sensor.get_remote_origin_id(),
                                              sensor.selector_id)
        if state is None or not state.is_running:
            instance.start_sensor(sensor)
        flags = {SENSOR: {crash_point: signal.SIGKILL}} if crash_point else None
        list(execute_sensor_iteration(workspace, get_default_daemon_logger("SensorDaemon"),
                                      threadpool_executor=None, submit_threadpool_executor=None,
                                      debug_crash_flags=flags))


def sensor_killed(root: Path, models: Path, days: int) -> Outcome:
    """The sensor daemon process killed with SIGKILL between computing a tick and storing its
    cursor, at each of Dagster's crash points; the next daemon process finishes the tick. Every
    uploaded device-day gets exactly one run whose files are all the ones uploaded (runs stay
    queued: this scenario is about what is requested, not how it runs)."""
    import multiprocessing

    from conftest import free_port
    outcome = Outcome("sensor killed before its cursor")
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\ntelemetry:\n  enabled: false\n")
    data = root / "data"
    env = {"DAGSTER_HOME": str(home), "WATCHME_DATA_DIR": str(data),
           "WATCHME_MODEL_PROFILE": "tiny", "WATCHME_DEPLOYMENT": "local",
           "WATCHME_AUDIO_STORE": str(data / "audio"),
           "WATCHME_DATABASE_URL": f"sqlite:///{data / 'watchme.db'}"}
    world = new_world(data, models, audio=LocalAudioStore(root=str(data / "audio")))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "-m", "watchme_pipeline.definitions",
         "-a", "defs", "-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spawn = multiprocessing.get_context("spawn")
    now = time.time()
    try:
        _wait_for_grpc(port, server)
        for i, point in enumerate(SENSOR_CRASH_POINTS * days):
            for device in (f"sk-{i}-a", f"sk-{i}-b"):
                world.upload_day(device, seconds=1)
            for crash in (point, None):  # killed at the point, then the next daemon process
                now += 120  # past the sensor's minimum interval
                proc = spawn.Process(target=sensor_daemon_tick,
                                     args=(str(home), port, env, now, crash))
                proc.start()
                proc.join(300)
                if crash and proc.exitcode == -signal.SIGKILL:
                    outcome.injections += 1
                elif proc.exitcode != (-signal.SIGKILL if crash else 0):
                    outcome.problems.append(f"{point}: daemon exit code {proc.exitcode}")
        now += 120
        proc = spawn.Process(target=sensor_daemon_tick, args=(str(home), port, env, now, None))
        proc.start()
        proc.join(300)  # nothing new: no runs
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}))
            outcome.runs = len(runs)
            per_day: dict[tuple[str, str], int] = {}
            for run in runs:
                date, device = run.tags["dagster/partition"].split("|")
                per_day[(device, date)] = per_day.get((device, date), 0) + 1
                if per_day[(device, date)] == 1:  # files this device-day's run was asked for
                    outcome.rows_out += int(run.tags["watchme/new_files"])
        for day, keys in world.uploads.items():
            outcome.recordings_in += len(keys)
            count = per_day.get(day, 0)
            outcome.lost += len(keys) if count == 0 else 0
            outcome.duplicated += max(0, count - 1)
        outcome.lost += max(0, outcome.recordings_in - outcome.rows_out)
        if not outcome.problems and not outcome.lost and not outcome.duplicated:
            outcome.recovered = outcome.injections
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            # Dagster's code server can take longer than that to shut down gracefully on a
            # loaded machine (seen once in make test); what it served is already counted.
            server.kill()
            server.wait(30)
    return outcome


def _wait_for_grpc(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    from dagster._grpc.client import DagsterGrpcClient
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"code server exited with {server.returncode}")
        try:
            client.ping("up")
            return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"code server on port {port} not up after {timeout} s")


def hostile_input(root: Path, models: Path, days: int) -> Outcome:
    """Hostile audio fails its own slot with a reason; hostile keys never become rows."""
    import io

    import soundfile as sf
    world = new_world(root, models)
    world.upload_day("hostile")
    rng = np.random.default_rng(5)

    def wav(x, rate=16000, subtype="PCM_16", fmt="WAV"):
        buf = io.BytesIO()
        sf.write(buf, x, rate, subtype=subtype, format=fmt)
        return buf.getvalue()

    tone = (0.3 * np.sin(np.arange(16000 * 3) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    nan = tone.copy()
    nan[100:200] = np.nan
    bad_audio = {
        "04-00": b"",  # empty
        "04-30": rng.bytes(4096),  # random bytes
        "05-00": wav(tone)[:300],  # truncated header and data
        "05-30": b"ID3\x03\x00\x00\x00" + rng.bytes(2048),  # an MP3 named audio.wav
        "06-00": wav(nan, subtype="FLOAT"),  # NaN samples
    }
    good_odd = {
        "06-30": wav(tone[:160]),  # 10 ms
        "07-00": wav(np.stack([tone, tone], 1), 8000, "PCM_24"),  # 24-bit stereo 8 kHz
        "07-30": wav(tone, 44100, "DOUBLE"),  # 64-bit float
        "08-00": wav(tone, 16000, "ULAW"),  # mu-law
    }
    keys = world.uploads[("hostile", DATE)]
    for slot, data in {**bad_audio, **good_odd}.items():
        key = f"files/hostile/{DATE}/{slot}/audio.wav"
        for old in [k for k in keys if parse_key(k).slot == slot]:
            keys.discard(old)
            Path(world.audio._path(old)).unlink()
        world.audio.write(key, data)
        keys.add(key)
    hostile_keys = ["files/../etc/audio.wav", f"files/a|b/{DATE}/09-00/audio.wav",
                    "files/hostile/2025-02-30/09-00/audio.wav",
                    f"files/hostile/{DATE}/25-00/audio.wav",
                    f"files/hostile/{DATE}/09-00/audio.mp3"]
    for key in hostile_keys[1:]:
        world.audio.write(key, b"x")
    outcome = Outcome("hostile audio and keys", injections=len(bad_audio) + len(hostile_keys))
    result = world.run("hostile")
    outcome.runs = 1
    if not result.success:
        outcome.problems.append(f"hostile run failed: {failures(result)}")
    skipped = result.asset_materializations_for_node("raw_audio")[0].metadata[
        "skipped_keys"].value if result.success else {}
    if f"files/hostile/{DATE}/25-00/audio.wav" not in skipped:
        outcome.problems.append("an impossible time was not skipped with a reason")
    files = world.results.read("audio_files", "hostile", DATE)
    if any(".." in k or "|" in k for k in files.file_path):
        outcome.problems.append("a hostile key became a row")
    expect = {f"files/hostile/{DATE}/{s}/audio.wav" for s in bad_audio} | _corrupt(world)
    return check(world, outcome, expect_failed=expect)


def secrets_never_leak(root: Path, models: Path, days: int) -> Outcome:
    """Runs with fake secrets in the environment; none may appear in logs, metadata,
    exceptions or stored rows."""
    outcome = Outcome("secrets scan", injections=len(SECRETS))
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    try:
        from watchme_pipeline.resources.audio_store import audio_store_for
        from watchme_pipeline.settings import load_deployment
        store = audio_store_for(load_deployment({
            "AWS_ACCESS_KEY_ID": "AKIAFAKE", "AWS_SECRET_ACCESS_KEY": SECRETS[
                "AWS_SECRET_ACCESS_KEY"], "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
            "WATCHME_AUDIO_STORE": "s3://nowhere-bucket/x"}))
        world = new_world(root, models)
        world.upload_day("sec-0")
        assert world.run("sec-0").success
        failing = world.resources()
        failing["audio_store"] = store  # nothing listens on port 9: the run fails
        world.instance.add_dynamic_partitions("devices", ["sec-1"])
        bad = dg.materialize(ALL_ASSETS, partition_key=f"{DATE}|sec-1", resources=failing,
                             instance=world.instance, raise_on_error=False)
        outcome.runs = 2
        text = []
        for run in world.instance.get_runs():
            for entry in world.instance.all_logs(run.run_id):
                text.append(entry.user_message or "")
                if entry.dagster_event:
                    text.append(str(entry.dagster_event))
        text.append(repr(store))
        text += [str(e) for e in bad.all_events]
        blob = "\n".join(text)
        leaked = [name for name, value in SECRETS.items() if value in blob]
        if leaked:
            outcome.problems.append(f"secrets in logs/metadata: {leaked}")
        return check(world, outcome, expect_failed=_corrupt(world))
    finally:
        restore_env(saved)


def restore_env(saved: dict[str, str | None]) -> None:
    """Put back the variables a scenario set (None: it was unset)."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def failures(result) -> str:
    return "; ".join(e.event_specific_data.error.to_string()[-600:]
                     for e in result.all_events if e.is_step_failure)


def _corrupt(world: World) -> set[str]:
    return {k for keys in world.uploads.values() for k in keys if "/12-30" in k}


def run_campaign(models: Path, days: int, only: list[str] | None = None,
                 cluster: PostgresCluster | None = None) -> list[Outcome]:
    own_cluster = cluster is None
    cluster = cluster or PostgresCluster().start()
    scenarios: dict[str, Callable[..., Outcome]] = {
        "s3": s3_faults, "s3_stall": s3_stalls, "deleted": deleted_object,
        "pg_restart": lambda r, m, d: pg_restart(r, m, d, cluster),
        "pg_cut": lambda r, m, d: pg_cut_mid_write(r, m, d, cluster),
        "sigkill": sigkill, "sensor_kill": sensor_killed, "hostile": hostile_input,
        "secrets": secrets_never_leak, "queue": queue_notifications,
    }
    outcomes = []
    try:
        with tempfile.TemporaryDirectory(prefix="watchme-faults-") as tmp:
            for name, scenario in scenarios.items():
                if only and name not in only:
                    continue
                outcomes.append(scenario(Path(tmp) / name, models, days))
    finally:
        if own_cluster:
            cluster.stop()
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    head = ("| scenario | injections | runs | recordings in | rows out | lost | duplicated |"
            " failed with reason | recovered |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.scenario} | {o.injections} | {o.runs} | {o.recordings_in} |"
                     f" {o.rows_out} | {o.lost} | {o.duplicated} | {o.failed_with_reason} |"
                     f" {o.recovered} |")
    lines.append(f"scenarios={len(outcomes)} lost={sum(o.lost for o in outcomes)} "
                 f"duplicated={sum(o.duplicated for o in outcomes)}")
    return "\n".join(lines)
