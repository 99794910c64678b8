"""new_audio_sensor over the local store, and the cursor logic on its own."""

import datetime as dt
import json
import os

import dagster as dg
from conftest import tick

from watchme_pipeline.resources import LocalAudioStore, StoredObject
from watchme_pipeline.sensors import plan_tick
from watchme_pipeline.sensors.new_audio import MAX_RUNS_PER_TICK

T0 = dt.datetime(2025, 7, 18, 12, 0, tzinfo=dt.UTC)


def obj(key: str, seconds: float = 0) -> StoredObject:
    return StoredObject(key, 100, T0 + dt.timedelta(seconds=seconds))


def key(device: str = "dev-1", date: str = "2025-07-18", time: str = "09-00") -> str:
    return f"files/{device}/{date}/{time}/audio.wav"


def partitions(result: dg.SensorResult) -> list[str]:
    return sorted(str(r.partition_key) for r in result.run_requests)


def test_first_tick_adds_devices_and_requests_each_device_day(real_instance, tmp_path):
    store = LocalAudioStore(root=str(tmp_path))
    for k in [key(), key(time="09-30-12"), key(device="dev-2"), key(date="2025-07-19"),
              key(device="bad|id"), key(date="2025-02-30"), "files/dev-1/notes.txt"]:
        store.write(k, b"x")
    result = tick(real_instance, store)
    assert partitions(result) == ["2025-07-18|dev-1", "2025-07-18|dev-2", "2025-07-19|dev-1"]
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["dev-1", "dev-2"]]
    assert sorted(real_instance.get_dynamic_partitions("devices")) == ["dev-1", "dev-2"]
    assert all(r.run_key.startswith(str(r.partition_key) + ":") for r in result.run_requests)
    cursor = json.loads(result.cursor)
    assert cursor["watermark"] and len(cursor["seen"]) == 7

    # Same listing, saved cursor (a restart): nothing new, nothing requested twice.
    again = tick(real_instance, store, result.cursor)
    assert again.run_requests == [] and not again.dynamic_partitions_requests

    # One new file: one run for its day, with a new run key.
    store.write(key(time="10-00"), b"x")
    third = tick(real_instance, store, again.cursor)
    assert partitions(third) == ["2025-07-18|dev-1"]
    assert third.run_requests[0].run_key != result.run_requests[0].run_key


def test_equal_timestamps_and_deleted_objects(real_instance, tmp_path):
    store = LocalAudioStore(root=str(tmp_path))
    first = store.write(key(time="09-00"), b"x")
    stamp = os.stat(first).st_mtime
    result = tick(real_instance, store)
    second = store.write(key(device="dev-2", time="09-00"), b"x")
    os.utime(second, (stamp, stamp))  # exactly the same LastModified as the seen one
    os.remove(first)  # and the object the cursor last saw is gone
    later = tick(real_instance, store, result.cursor)
    assert partitions(later) == ["2025-07-18|dev-2"]


def test_one_tick_is_bounded_and_the_rest_wait(real_instance, tmp_path):
    store = LocalAudioStore(root=str(tmp_path))
    n = MAX_RUNS_PER_TICK + 5
    for i in range(n):
        store.write(key(device=f"dev-{i:02d}"), b"x")
    first = tick(real_instance, store)
    assert len(first.run_requests) == MAX_RUNS_PER_TICK
    second = tick(real_instance, store, first.cursor)
    assert len(second.run_requests) == 5
    assert not set(partitions(first)) & set(partitions(second))
    assert tick(real_instance, store, second.cursor).run_requests == []


def test_plan_tick_never_misses_or_repeats():
    listing = [obj(key(device=f"d{i}"), seconds=i // 3) for i in range(12)]  # equal stamps
    seen: set[str] = set()
    cursor = None
    for _ in range(5):
        plan = plan_tick(listing, cursor, max_runs=4)
        for keys in plan.requests.values():
            assert not set(keys) & seen
            seen |= set(keys)
        cursor = plan.cursor
    assert seen == {o.key for o in listing}
    # An upload in flight: it lists after the tick, stamped just before the watermark.
    late = obj(key(device="late"), seconds=2)
    plan = plan_tick([*listing, late], cursor, max_runs=4)
    assert list(plan.requests.values()) == [[late.key]]
    # A re-upload of a seen key (new LastModified) is new again.
    plan = plan_tick([*listing, late, obj(key(device="d0"), seconds=30)], plan.cursor, 4)
    assert [str(d) for d in plan.requests] == ["d0 2025-07-18"]


def test_plan_tick_skips_bad_keys_and_dates_outside_partitions():
    listing = [obj(key()), obj("files/a..b/2025-07-18/09-00/audio.wav"),
               obj(key(date="2024-12-31")), obj("files/dev-1/enrollment/voice.wav")]
    plan = plan_tick(listing, None, 10, valid_dates={"2025-07-18"})
    assert [str(d) for d in plan.requests] == ["dev-1 2025-07-18"]
    assert "invalid device id" in plan.skipped["files/a..b/2025-07-18/09-00/audio.wav"]
    assert "outside the partitions" in plan.skipped[key(date="2024-12-31")]
    # An enrollment recording is the speakers stage's, neither a slot nor a bad key.
    assert len(plan.skipped) == 2


def test_a_tick_whose_cursor_was_never_stored_repeats_exactly():
    """The sensor process killed between computing a tick and storing its cursor: the next
    tick starts from the old cursor and asks for the same runs with the same run keys, which
    Dagster's run-key de-duplication drops. Nothing is missed, nothing runs twice."""
    listing = [obj(key(device=f"d{i}"), seconds=i) for i in range(5)]
    first = plan_tick(listing, None, max_runs=10)
    again = plan_tick(listing, None, max_runs=10)  # the cursor of `first` was lost
    assert {first.run_key(d) for d in first.requests} == {again.run_key(d) for d in again.requests}
    assert again.cursor == first.cursor



LISTED: list[str] = []  # what CountingStore's listings returned (Dagster copies resources)


class CountingStore(LocalAudioStore):
    """Counts the objects each listing returns: what a tick reads."""

    def list_objects(self, prefix="", start_after=None):
        for o in super().list_objects(prefix, start_after):
            LISTED.append(o.key)
            yield o


def test_a_tick_lists_recent_days_not_the_history(real_instance, tmp_path):
    store, listed = CountingStore(root=str(tmp_path)), LISTED
    listed.clear()
    days = [(dt.date(2025, 6, 1) + dt.timedelta(days=i)).isoformat() for i in range(30)]
    for day in days:
        for time in ("09-00", "09-30"):
            store.write(key("dev-h", day, time), b"RIFF")
    store.write(key("dev-h", "2099-01-01"), b"RIFF")  # outside the partitions: skipped
    first = tick(real_instance, store)
    assert len(listed) == 61  # a device seen for the first time: listed whole, once
    assert json.loads(first.cursor)["newest"] == {"dev-h": "2025-06-30"}
    listed.clear()
    second = tick(real_instance, store, first.cursor)
    # From two days before its newest date: 3 days x 2 slots, and the far-future key.
    assert sorted(listed) == sorted(
        [key("dev-h", d, t) for d in days[-3:] for t in ("09-00", "09-30")]
        + [key("dev-h", "2099-01-01")])
    store.write(key("dev-h", "2025-07-01"), b"RIFF")  # a new day
    store.write(key("dev-h", "2025-06-29", "10-00"), b"RIFF")  # a late upload, one day late
    listed.clear()
    third = tick(real_instance, store, second.cursor)
    assert partitions(third) == ["2025-06-29|dev-h", "2025-07-01|dev-h"]
    assert json.loads(third.cursor)["newest"] == {"dev-h": "2025-07-01"}
    assert len(listed) == 9


def test_a_first_tick_past_its_budget_lists_the_other_new_devices_next_time(real_instance,
                                                                           tmp_path):
    """A device seen for the first time is listed whole only while the tick's budget lasts;
    one reached on a later tick still has every upload found, however old."""
    from watchme_pipeline.sensors.new_audio import plan_tick, recent_objects

    store = LocalAudioStore(root=str(tmp_path))
    for device in ("dev-a", "dev-b"):
        store.write(key(device, "2025-07-10"), b"RIFF")
    dates = {"2025-07-10", "2025-07-18"}
    objects, newest, first = recent_objects(store, {}, dates, budget_s=-1)  # spent at once
    assert first == {"dev-a"} and newest == {"dev-a": "2025-07-10"}
    plan = plan_tick(objects, None, 10, dates, first)
    store.write(key("dev-a", "2025-07-18"), b"RIFF")  # newer than anything dev-b holds
    cursor = json.dumps({**json.loads(plan.cursor), "newest": newest})
    objects, newest, first = recent_objects(store, newest, dates)
    assert first == {"dev-b"}
    later = plan_tick(objects, cursor, 10, dates, first)
    assert sorted(str(d) for d in later.requests) == ["dev-a 2025-07-18", "dev-b 2025-07-10"]
