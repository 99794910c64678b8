import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from watchme_pipeline.partitions import DeviceDay, parse_partition_key
from watchme_pipeline.slots import (
    SLOTS,
    InvalidIdentifier,
    parse_key,
    recording_key,
    validate_device_id,
)


def test_48_slots_named_like_the_old_system():
    assert len(SLOTS) == 48
    assert SLOTS[0] == "00-00" and SLOTS[1] == "00-30" and SLOTS[-1] == "23-30"


@pytest.mark.parametrize(
    "key, slot, seconds",
    [
        ("files/dev-1/2025-07-18/09-00/audio.wav", "09-00", 9 * 3600),
        ("files/dev-1/2025-07-18/09-30/audio.wav", "09-30", 9 * 3600 + 1800),
        ("files/dev-1/2025-07-18/09-29-59/audio.wav", "09-00", 9 * 3600 + 29 * 60 + 59),
        ("files/dev-1/2025-07-18/23-45-10/audio.wav", "23-30", 23 * 3600 + 45 * 60 + 10),
        ("prefix/deep/files/dev-1/2025-07-18/00-00/audio.wav", "00-00", 0),
    ],
)
def test_both_key_layouts_map_to_their_slot(key, slot, seconds):
    parsed = parse_key(key)
    assert (parsed.device_id, parsed.date, parsed.slot, parsed.seconds_of_day) == (
        "dev-1", "2025-07-18", slot, seconds)


def test_recorded_at_is_local_time():
    parsed = parse_key("files/d/2025-07-18/09-30-15/audio.wav")
    at = parsed.recorded_at(ZoneInfo("Asia/Tokyo"))
    assert at.astimezone(dt.UTC) == dt.datetime(2025, 7, 18, 0, 30, 15,
                                                         tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "key, reason",
    [
        ("files/dev-1/2025-02-30/09-00/audio.wav", "impossible date"),
        ("files/dev-1/2025-07-18/24-00/audio.wav", "impossible time"),
        ("files/dev-1/2025-07-18/09-61/audio.wav", "impossible time"),
        ("files/dev|1/2025-07-18/09-00/audio.wav", "invalid device id"),
        ("files/dev,1/2025-07-18/09-00/audio.wav", "invalid device id"),
        ("files/../2025-07-18/09-00/audio.wav", "invalid device id"),
        ("files//2025-07-18/09-00/audio.wav", "invalid device id"),
        ("files/" + "x" * 65 + "/2025-07-18/09-00/audio.wav", "invalid device id"),
        ("files/dev-1/2025-07-18/09-00/audio.mp3", "does not match"),
        ("files/dev\n1/2025-07-18/09-00/audio.wav", "control characters"),
        ("files/dev-1/2025-07-18/nine/audio.wav", "not HH-MM"),
    ],
)
def test_bad_keys_are_refused_with_a_reason(key, reason):
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_key(key)


def test_device_ids():
    assert validate_device_id("d067d407-cf73-4174-a9c1-d91fb60d64d0")
    for bad in ["", "a..b", ".hidden", "a/b", "a b", "x" * 65]:
        with pytest.raises(InvalidIdentifier):
            validate_device_id(bad)
    with pytest.raises(InvalidIdentifier):
        recording_key("dev-1", "2025-07-18", "25-00")


def test_partition_key_helper_accepts_both_forms():
    multi = dg.MultiPartitionKey({"date": "2025-07-18", "device": "dev-1"})
    assert parse_partition_key(multi) == DeviceDay("dev-1", "2025-07-18")
    assert parse_partition_key("2025-07-18|dev-1") == DeviceDay("dev-1", "2025-07-18")
    with pytest.raises(InvalidIdentifier, match="malformed partition key"):
        parse_partition_key("2025-07-18")
    with pytest.raises(InvalidIdentifier, match="invalid device id"):
        parse_partition_key("2025-07-18|a..b")
