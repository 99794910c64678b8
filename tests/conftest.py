"""Shared fixtures: tiny models built once per session, a sample device-day, resources."""

import os
import tempfile
from pathlib import Path

# definitions.py reads the environment when imported (tests that load it): set it first.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="watchme-tests-"))
os.environ["WATCHME_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["WATCHME_MODEL_PROFILE"] = "tiny"
os.environ.pop("WATCHME_AUDIO_STORE", None)
os.environ.pop("WATCHME_DATABASE_URL", None)

import dagster as dg  # noqa: E402
import pytest  # noqa: E402
from reliability import SHARED_PROCESS_MEMORY_MB, TEST_VOICES  # noqa: E402

from watchme_pipeline.assets import build_assets  # noqa: E402
from watchme_pipeline.checks import build_checks  # noqa: E402
from watchme_pipeline.models.tiny import TINY_BUILDERS  # noqa: E402
from watchme_pipeline.partitions import DeviceDay, build_partitions  # noqa: E402
from watchme_pipeline.resources import (  # noqa: E402
    LocalAudioStore,
    LocalMoodScorer,
    ModelRegistry,
    SqlResultStore,
)
from watchme_pipeline.sample_data import write_sample_day  # noqa: E402
from watchme_pipeline.sensors import build_new_audio_sensor  # noqa: E402
from watchme_pipeline.settings import PipelineSettings  # noqa: E402
from watchme_pipeline.stage import Makers  # noqa: E402

# `make test-fast` runs `-m "not slow"`: no servers (PostgreSQL, S3, Dagster's webserver), no
# whole-graph runs, no real weights. `make test` runs everything.
SLOW_MODULES = {"test_alerts_daemon", "test_webserver_e2e", "test_first_hour", "test_reliability",
                "test_add_a_stage", "test_privacy",
                "test_s3",
                "test_real_whisper", "test_data_lies", "test_pipeline", "test_operations",
                "test_deployment"}
SERVER_FIXTURES = {"postgres", "s3_endpoint", "s3_store"}


def pytest_collection_modifyitems(items):
    for item in items:
        if (item.module.__name__ in SLOW_MODULES or "[postgresql]" in item.nodeid
                or SERVER_FIXTURES & set(item.fixturenames)):
            item.add_marker(pytest.mark.slow)


MODEL_CACHE = _SESSION_DIR / "models"
DEVICE, DATE = "dev-1", "2025-07-18"
# The graph as definitions.py builds it, for the embedded defaults and the tiny models.
PARTITIONS = build_partitions("Asia/Tokyo", "2025-01-01")
ALL_ASSETS = build_assets(PARTITIONS, Makers(ModelRegistry(profile="tiny",
                                                         cache_dir=str(MODEL_CACHE)),
                                           PipelineSettings(), LocalMoodScorer().name()))
ASSET = {a.key.to_user_string(): a for a in ALL_ASSETS}
ALL_CHECKS = build_checks(PARTITIONS)
new_audio_sensor = build_new_audio_sensor(PARTITIONS)


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """Random-weight Whisper, AST and wav2vec2 with the real classes, built once; their ONNX
    exports made once too (homes that link this folder share them)."""
    for build in TINY_BUILDERS.values():
        build(MODEL_CACHE)
    registry = ModelRegistry(profile="tiny", cache_dir=str(MODEL_CACHE),
                             event_runtime="onnxruntime")
    registry.get("events")
    registry.get("emotion")  # wav2vec2 runs on ONNX Runtime by default
    registry.release_all()
    return MODEL_CACHE


@pytest.fixture
def audio_store(tmp_path) -> LocalAudioStore:
    return LocalAudioStore(root=str(tmp_path / "audio"))


@pytest.fixture
def result_store(tmp_path) -> SqlResultStore:
    return SqlResultStore(database_url=f"sqlite:///{tmp_path / 'results.db'}")


@pytest.fixture
def resources(tiny_models, audio_store, result_store) -> dict:
    return {
        "audio_store": audio_store,
        "result_store": result_store,
        "model_registry": ModelRegistry(profile="tiny", cache_dir=str(tiny_models)),
        "mood_scorer": LocalMoodScorer(),
        "settings": PipelineSettings(memory_mb=SHARED_PROCESS_MEMORY_MB),
    }


@pytest.fixture(scope="session")
def sample_bytes(tmp_path_factory) -> dict[str, bytes]:
    """The sample day (20 s recordings), generated once; tests copy it into their store."""
    root = tmp_path_factory.mktemp("sample")
    store = LocalAudioStore(root=str(root))
    write_sample_day(store, DEVICE, DATE, seconds=20, voices=TEST_VOICES)
    return {o.key: store.read(o.key) for o in store.list_objects("files/")}


@pytest.fixture
def sample_day(audio_store, sample_bytes) -> dict[str, bytes]:
    for key, data in sample_bytes.items():
        audio_store.write(key, data)
    return sample_bytes


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def materialize_day(resources: dict, instance: dg.DagsterInstance, device: str = DEVICE,
                    date: str = DATE, assets=ALL_ASSETS, **kwargs) -> dg.ExecuteInProcessResult:
    if device not in instance.get_dynamic_partitions("devices"):
        instance.add_dynamic_partitions("devices", [device])
    return dg.materialize(assets, partition_key=str(DeviceDay(device, date).partition_key),
                          resources=resources, instance=instance, **kwargs)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback, spoken to over HTTP by boto3 (no patched functions)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint, request):
    """An S3AudioStore on a fresh bucket of the loopback server."""
    import re

    from dagster_aws.s3 import S3Resource

    from watchme_pipeline.resources import S3AudioStore

    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    s3 = S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1",
                    aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.get_client().create_bucket(Bucket=bucket)
    return S3AudioStore(bucket=bucket, prefix="watchme", s3=s3)


@pytest.fixture
def queue(s3_endpoint, request):
    """An empty SQS queue on the loopback moto server, read as the upload queue."""
    import boto3

    from watchme_pipeline.resources.upload_queue import UploadQueue

    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    name = "q-" + "".join(c for c in request.node.name if c.isalnum())[:60]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return UploadQueue(queue_url=url, key_prefix="watchme", endpoint_url=s3_endpoint,
                       region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing", visibility_timeout_s=2)


@pytest.fixture
def real_instance():
    """A temporary on-disk instance (sensors need its ref for dynamic partitions)."""
    with dg.instance_for_test() as inst:
        yield inst


TICK_RESULTS = SqlResultStore(database_url=f"sqlite:///{_SESSION_DIR / 'tick-results.db'}")


def tick(instance: dg.DagsterInstance, store, cursor: str | None = None,
         results: SqlResultStore = TICK_RESULTS) -> dg.SensorResult:
    """Evaluate new_audio_sensor once and apply its partition requests, as the daemon does."""
    with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                 cursor=cursor, resources={"audio_store": store,
                                                           "result_store": results}) as context:
        result = new_audio_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the session; each test gets its own database."""
    from pg import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request, tmp_path) -> str:
    """The same store tests on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    cluster = request.getfixturevalue("postgres")
    import re

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    return cluster.create_database(name)
