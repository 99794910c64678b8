"""The S3 audio store and the sensor against moto's S3 server on loopback, over HTTP."""

import json

import dagster as dg
import pytest
from conftest import ALL_ASSETS, DATE, DEVICE, tick

from watchme_pipeline.resources import LocalAudioStore, S3AudioStore, audio_store_for
from watchme_pipeline.sample_data import CORRUPT, MISSING
from watchme_pipeline.settings import load_deployment
from watchme_pipeline.slots import SLOTS


def test_store_selection_is_configuration_only(monkeypatch):
    assert isinstance(audio_store_for(load_deployment({"WATCHME_AUDIO_STORE": "/tmp/x"})),
                      LocalAudioStore)
    env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_REGION": "ap-northeast-1",
           "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
           "WATCHME_AUDIO_STORE": "s3://watchme-audio/prod/v1"}
    deployment = load_deployment(env)
    assert "s3cr3t" not in repr(deployment)  # the deployment notes that a secret is set
    store = audio_store_for(deployment)
    assert isinstance(store, S3AudioStore)
    assert (store.bucket, store.prefix) == ("watchme-audio", "prod/v1")
    assert store.s3.endpoint_url == "http://127.0.0.1:9"
    assert store.s3.region_name == "ap-northeast-1"
    # Secrets stay EnvVar references: the UI and run config show names, never values.
    assert isinstance(store.s3.aws_secret_access_key, dg.EnvVar)
    assert "s3cr3t" not in repr(store) and "s3cr3t" not in store.describe()
    with pytest.raises(ValueError, match="no bucket"):
        load_deployment({"WATCHME_AUDIO_STORE": "s3:///x"})


def test_both_layouts_round_trip_and_list(s3_store):
    keys = [f"files/{DEVICE}/{DATE}/09-00/audio.wav", f"files/{DEVICE}/{DATE}/09-31-05/audio.wav"]
    for k in keys:
        assert s3_store.write(k, b"abc") == f"s3://{s3_store.bucket}/watchme/{k}"
    listed = list(s3_store.list_objects(f"files/{DEVICE}/"))
    assert [o.key for o in listed] == keys and all(o.size == 3 for o in listed)
    assert s3_store.read(keys[1]) == b"abc"
    with pytest.raises(FileNotFoundError):
        s3_store.read(f"files/{DEVICE}/{DATE}/10-00/audio.wav")


def test_stalled_body_times_out_and_is_read_again(s3_endpoint):
    """A body that stops mid-transfer: the client gives up after read_timeout_s and the store
    reads the object again; with no tries left the error names the object."""
    from faultproxy import FaultProxy

    from watchme_pipeline.resources import TimedS3Resource

    port = int(s3_endpoint.rsplit(":", 1)[1])
    proxy = FaultProxy(port)
    try:
        s3 = TimedS3Resource(endpoint_url=f"http://127.0.0.1:{proxy.port}",
                             region_name="us-east-1", aws_access_key_id="t",
                             aws_secret_access_key="t", read_timeout_s=0.5)
        s3.get_client().create_bucket(Bucket="stall")
        payload = bytes(range(256)) * 1024  # 256 kB
        store = S3AudioStore(bucket="stall", s3=s3)
        store.write("files/a/2025-07-18/09-00/audio.wav", payload)
        store._client = None  # a fresh connection, so the stall lands on the read
        proxy.faults.stall_after_bytes = 50_000
        assert store.read("files/a/2025-07-18/09-00/audio.wav") == payload
        assert proxy.faults.injected["stall_body"] == 1

        once = S3AudioStore(bucket="stall", s3=s3, read_attempts=1)
        proxy.faults.stall_after_bytes = 50_000
        with pytest.raises(OSError, match=r"s3://stall/files/a/2025-07-18/09-00/audio.wav: read "
                                          r"gave up after 1 tries, the last with ReadTimeout"):
            once.read("files/a/2025-07-18/09-00/audio.wav")
    finally:
        proxy.close()


def test_sensor_pages_past_1000_keys_without_misses_or_repeats(s3_store, real_instance):
    client = s3_store.client
    keys = [f"watchme/files/dev-{d}/{DATE}/{SLOTS[i % 48]}-{i // 48:02d}/audio.wav"
            for d in range(3) for i in range(400)]  # 1,200 keys, equal-second timestamps
    for k in keys:
        client.put_object(Bucket=s3_store.bucket, Key=k, Body=b"x")
    client.put_object(Bucket=s3_store.bucket, Key=f"watchme/files/a..b/{DATE}/09-00/audio.wav",
                      Body=b"x")
    assert len(list(s3_store.list_objects("files/"))) == 1201
    first = tick(real_instance, s3_store)
    assert sorted(str(r.partition_key) for r in first.run_requests) == [
        f"{DATE}|dev-0", f"{DATE}|dev-1", f"{DATE}|dev-2"]
    assert len(json.loads(first.cursor)["seen"]) == 1201
    # A restart with the saved cursor: nothing repeats; a new upload is found.
    assert tick(real_instance, s3_store, first.cursor).run_requests == []
    client.put_object(Bucket=s3_store.bucket, Key=f"watchme/files/dev-3/{DATE}/09-00/audio.wav",
                      Body=b"x")
    client.delete_object(Bucket=s3_store.bucket, Key=keys[-1])  # and a seen one disappears
    third = tick(real_instance, s3_store, first.cursor)
    assert [str(r.partition_key) for r in third.run_requests] == [f"{DATE}|dev-3"]
    assert "dev-3" in real_instance.get_dynamic_partitions("devices")


def test_upload_tick_run_rows_end_to_end(s3_store, real_instance, sample_bytes, resources):
    for key, data in sample_bytes.items():
        s3_store.write(key, data, "audio/wav")
    result = tick(real_instance, s3_store)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    defs = dg.Definitions(assets=ALL_ASSETS, jobs=[dg.define_asset_job("device_day_job")],
                          resources={**resources, "audio_store": s3_store})
    run = defs.resolve_job_def("device_day_job").execute_in_process(
        partition_key=str(request.partition_key), instance=real_instance, tags=request.tags)
    assert run.success
    store = resources["result_store"]
    files = store.read("audio_files", DEVICE, DATE)
    assert len(files) == 48 - len(MISSING)
    failed = files[files.transcriptions_status == "failed"]
    assert list(failed.time_block) == [CORRUPT]
    assert "not a readable audio file" in failed.iloc[0].error
    assert (files[files.time_block != CORRUPT].transcriptions_status == "completed").all()
    assert len(store.read("vibe_whisper", DEVICE, DATE)) == 48 - len(MISSING) - 1
    summary = store.read("vibe_whisper_summary", DEVICE, DATE).iloc[0]
    assert summary.chart_path == (
        f"s3://{s3_store.bucket}/watchme/charts/{DEVICE}/{DATE}/mood_chart.png")
    png = s3_store.read(f"charts/{DEVICE}/{DATE}/mood_chart.png")
    assert png[:4] == b"\x89PNG"


def test_listing_after_a_key_and_the_device_folders(s3_store):
    """What the listing sensor asks S3 for: the device folders (CommonPrefixes) and one
    device's keys after a date (StartAfter), under the store's prefix."""
    for device in ("dev-a", "dev-b"):
        for day in ("2025-07-16", "2025-07-17", "2025-07-18"):
            s3_store.write(f"files/{device}/{day}/09-00/audio.wav", b"RIFF")
    assert s3_store.list_folders("files") == ["dev-a", "dev-b"]
    keys = [o.key for o in s3_store.list_objects("files/dev-a/",
                                                 start_after="files/dev-a/2025-07-17")]
    assert keys == ["files/dev-a/2025-07-17/09-00/audio.wav",
                    "files/dev-a/2025-07-18/09-00/audio.wav"]
