"""Queue mode (upload_queue_sensor): S3 upload notifications through SQS on moto's server
(loopback, boto3 over HTTP; moto's S3 sends the bucket's notifications itself), the upload
ledger in the result store, runs that batch a device-day's uploads."""

import datetime as dt
import json
import random
import signal
import time

import dagster as dg
from conftest import ASSET, PARTITIONS, materialize_day
from reliability import kill_a_tick_between_noting_and_deleting

from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources import SqlResultStore
from watchme_pipeline.resources.upload_queue import UploadQueue, parse_notifications
from watchme_pipeline.sensors.upload_queue import (
    build_upload_queue_sensor,
    drain_queue,
    plan_queue_runs,
)

T0 = dt.datetime(2025, 7, 19, 1, 0, tzinfo=dt.UTC)
DATES = set(PARTITIONS.get_partitions_def_for_dimension("date").get_partition_keys())


def notification(key: str, size: int = 10, sequencer: str = "0A", event: str = "Put") -> str:
    """What S3 sends for one upload (AWS's event JSON, key URL-encoded)."""
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": f"ObjectCreated:{event}",
        "eventTime": "2025-07-19T01:00:00.000Z",
        "s3": {"bucket": {"name": "audio"}, "object": {
            "key": key.replace("/", "%2F").replace(" ", "+"), "size": size,
            "sequencer": sequencer}}}]})


def post(queue: UploadQueue, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        queue.client.send_message_batch(QueueUrl=queue.queue_url, Entries=[
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])])


def keys_of(device: str, date: str, slots: list[str]) -> list[str]:
    return [f"watchme/files/{device}/{date}/{slot}/audio.wav" for slot in slots]


def test_notifications_are_parsed_as_aws_sends_them():
    sns = json.dumps({"Type": "Notification", "Message": notification(
        "watchme/files/dev-1/2025-07-18/09-00/audio.wav", sequencer="5F")})
    notice = parse_notifications([
        notification("watchme/files/dev-1/2025-07-18/09-30/audio.wav", size=123),
        sns,
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        notification("watchme/files/dev-1/2025-07-18/10-00/audio.wav", event="Copy"),
        "not json",
        notification("elsewhere/files/dev-1/2025-07-18/09-00/audio.wav"),
        notification("watchme/files/../2025-07-18/09-00/audio.wav"),
    ], key_prefix="watchme")
    assert [(u["file_path"], u["size"]) for u in notice.uploads] == [
        ("files/dev-1/2025-07-18/09-30/audio.wav", 123),
        ("files/dev-1/2025-07-18/09-00/audio.wav", 10),
        ("files/dev-1/2025-07-18/10-00/audio.wav", 10)]
    assert notice.uploads[1]["sequencer"] == "5F".rjust(32, "0")
    assert notice.uploads[0]["device_id"] == "dev-1" and notice.uploads[0]["local_date"] == \
        "2025-07-18"
    assert notice.other_events == 1 and len(notice.skipped) == 3
    assert "outside the audio store's prefix" in notice.skipped[
        "elsewhere/files/dev-1/2025-07-18/09-00/audio.wav"]


def test_duplicated_and_reordered_notifications_make_each_upload_once(queue, tmp_path, sql_url):
    store = SqlResultStore(database_url=sql_url)
    keys = keys_of("dev-1", "2025-07-18", ["09-00", "09-30", "10-00"]) + keys_of(
        "dev-2", "2025-07-18", ["09-00"])
    bodies = [notification(k, sequencer="0B") for k in keys] * 2  # every one twice
    bodies += [notification(keys[0], sequencer="0A")]  # an older one, arriving last
    random.Random(7).shuffle(bodies)
    post(queue, bodies)
    figures = drain_queue(queue, store, DATES)
    assert (figures.received, figures.noted, figures.deleted) == (9, 9, 9)
    pending = store.pending_uploads(limit=100)
    assert sorted(pending.file_path) == sorted(k.removeprefix("watchme/") for k in keys)
    assert set(pending.sequencer) == {"0B".rjust(32, "0")}  # the older one changed nothing
    runs, waiting = plan_queue_runs(pending, dt.datetime.now(dt.UTC), delay_s=0)
    assert sorted((str(r.day), len(r.keys)) for r in runs) == [
        (str(DeviceDay("dev-1", "2025-07-18")), 3), (str(DeviceDay("dev-2", "2025-07-18")), 1)]
    assert waiting == 0
    # A later upload of a key (greater sequencer) is new again; the same one again is not.
    for run in runs:
        store.mark_requested(run.keys, run.run_key, T0)
    post(queue, [notification(keys[1], sequencer="0C"), notification(keys[2], sequencer="0B")])
    drain_queue(queue, store, DATES)
    assert store.pending_uploads(limit=100).file_path.tolist() == [
        keys[1].removeprefix("watchme/")]


def test_a_device_days_uploads_wait_for_the_delay_and_go_in_one_run(queue, tmp_path,
                                                                    real_instance):
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    clock = {"now": dt.datetime.now(dt.UTC)}
    sensor = build_upload_queue_sensor(PARTITIONS, "device_day_job", run_delay_s=180,
                                       now=lambda: clock["now"])

    def tick():
        with dg.build_sensor_context(instance=real_instance, resources={
                "upload_queue": queue, "result_store": store}) as context:
            result = sensor(context)
        for request in result.dynamic_partitions_requests or []:
            real_instance.add_dynamic_partitions(request.partitions_def_name,
                                                 request.partition_keys)
        return result

    post(queue, [notification(k) for k in keys_of("dev-1", "2025-07-18", ["09-00"])])
    assert tick().run_requests == []  # just noted: it waits for more
    clock["now"] += dt.timedelta(seconds=120)
    post(queue, [notification(k) for k in keys_of("dev-1", "2025-07-18", ["09-30", "10-00"])])
    assert tick().run_requests == []
    clock["now"] += dt.timedelta(seconds=61)  # the oldest is now 181 s old
    [request] = tick().run_requests
    assert request.partition_key == "2025-07-18|dev-1" and request.tags == {
        "watchme/new_files": "3"}
    assert real_instance.has_dynamic_partition("devices", "dev-1")
    assert tick().run_requests == []  # requested: not again
    # The run never came (a daemon crash after the tick): after 30 min it is requested again,
    # with another run key; once raw_audio registered the files, they are forgotten.
    clock["now"] += dt.timedelta(minutes=31)
    [again] = tick().run_requests
    assert again.run_key != request.run_key and again.tags == {"watchme/new_files": "3"}
    store.register_recordings([{"device_id": "dev-1", "local_date": "2025-07-18",
                                "file_path": k.removeprefix("watchme/"), "time_block": k[-16:-11],
                                "recorded_at": T0}
                               for k in keys_of("dev-1", "2025-07-18",
                                                ["09-00", "09-30", "10-00"])])
    clock["now"] += dt.timedelta(minutes=31)
    assert tick().run_requests == []
    assert store.pending_uploads(limit=10).empty
    assert store.settle_uploads(clock["now"]) == (0, 0, 0)  # the ledger is empty


def test_moto_s3_notifications_through_the_queue_to_audio_files_exactly_once(
        s3_endpoint, s3_store, queue, resources, real_instance, sample_bytes):
    """S3 sends the notifications itself; the requested run registers every upload once."""
    s3 = s3_store.client
    arn = queue.client.get_queue_attributes(QueueUrl=queue.queue_url,
                                            AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=s3_store.bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    chosen = sorted(sample_bytes)[:4]
    for key in chosen:
        s3_store.write(key.replace("/dev-1/", "/dev-q/"), sample_bytes[key])
    slots = sorted(key.split("/")[3][:5] for key in chosen)  # HH-MM[-SS] -> the slot
    store = resources["result_store"]
    figures = drain_queue(queue, store, DATES)
    assert figures.noted == 4 and figures.other_events == 1  # and S3's test event
    runs, _ = plan_queue_runs(store.pending_uploads(limit=10), dt.datetime.now(dt.UTC), 0)
    assert [str(r.day) for r in runs] == ["dev-q 2025-07-18"]
    result = materialize_day({**resources, "audio_store": s3_store}, real_instance, "dev-q",
                             "2025-07-18", assets=[ASSET["raw_audio"]])
    assert result.success
    files = store.recordings("dev-q", "2025-07-18")
    assert sorted(files.time_block) == slots and files.file_path.is_unique
    assert store.settle_uploads(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == (0, 0, 0)
    for run in runs:
        store.mark_requested(run.keys, run.run_key, dt.datetime.now(dt.UTC))
    assert store.settle_uploads(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == (4, 0, 0)


def test_a_tick_killed_between_noting_and_deleting_neither_loses_nor_doubles(queue, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    keys = keys_of("dev-k", "2025-07-18", ["09-00", "09-30", "10-00"])
    post(queue, [notification(k) for k in keys])
    assert kill_a_tick_between_noting_and_deleting(queue, url, {"2025-07-18"}) == \
        -signal.SIGKILL
    store = SqlResultStore(database_url=url)
    assert sorted(store.pending_uploads(limit=10).file_path) == [
        k.removeprefix("watchme/") for k in keys]  # noted before the kill
    time.sleep(2.5)  # the visibility timeout: the messages come back
    figures = drain_queue(queue, store, {"2025-07-18"})
    assert (figures.received, figures.deleted) == (3, 3)
    pending = store.pending_uploads(limit=10)
    assert len(pending) == 3 and pending.file_path.is_unique  # not doubled
    runs, _ = plan_queue_runs(pending, dt.datetime.now(dt.UTC), 0)
    assert len(runs) == 1 and len(runs[0].keys) == 3
    assert drain_queue(queue, store, {"2025-07-18"}).received == 0  # the queue is empty


def test_the_daily_reconciliation_notes_uploads_no_notification_announced(tmp_path):
    from watchme_pipeline.definitions import build_definitions
    from watchme_pipeline.reconcile import recent_dates

    defs = build_definitions({"WATCHME_DATA_DIR": str(tmp_path), "WATCHME_MODEL_PROFILE": "tiny",
                              "WATCHME_UPLOAD_QUEUE": "http://127.0.0.1:9/000000000000/q"})
    assert defs.resolve_schedule_def("reconcile_uploads_daily").cron_schedule == "0 3 * * *"
    audio, store = defs.resources["audio_store"], defs.resources["result_store"]
    today = recent_dates(dt.datetime.now(dt.UTC), "Asia/Tokyo")[0]
    keys = [f"files/dev-r/{today}/{slot}/audio.wav" for slot in ("09-00", "09-30", "10-00")]
    for key in keys:
        audio.write(key, b"RIFF")
    store.register_recordings([{"device_id": "dev-r", "local_date": today, "file_path": keys[0],
                                "time_block": "09-00", "recorded_at": T0}])  # registered
    store.note_uploads([{"file_path": keys[1], "device_id": "dev-r", "local_date": today,
                         "size": 4, "sequencer": "1".rjust(32, "0")}])  # notified
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("devices", ["dev-r", "dev-empty"])
        job = defs.resolve_job_def("reconcile_uploads")
        result = job.execute_in_process(instance=instance)
        [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = output.event_specific_data.metadata
        assert metadata["found_without_notification"].value == 1
        assert metadata["device_days"].value == 4 and metadata["files_listed"].value == 3
        assert sorted(store.pending_uploads(limit=10).file_path) == keys[1:]
        again = job.execute_in_process(instance=instance)
        [output] = [e for e in again.all_events if e.event_type_value == "STEP_OUTPUT"]
        assert output.event_specific_data.metadata["found_without_notification"].value == 0
