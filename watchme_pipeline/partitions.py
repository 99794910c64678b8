"""Every asset is partitioned by local date x device, or by local date x device group.

Per-device partitions (the default) suit a pilot: each device-day is one partition the UI shows
and a run materializes. Dagster recommends at most 100,000 partitions per asset, and dates x
devices passes that at 1,000 devices within months, so ``WATCHME_DEVICE_GROUPS=N`` makes the
second dimension N stable groups of devices instead (a hash of the device id): a (date, group)
partition is every device of the group that recorded that day, and a run of it processes the
devices its run config names (the sensors name the devices with new uploads) or, when it names
none, all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import dagster as dg

from watchme_pipeline.slots import InvalidIdentifier, validate_date, validate_device_id

DATE, DEVICE, GROUP = "date", "device", "group"
# The devices the sensors have seen: the partitions' second dimension in per-device mode, and
# the registry of known devices (the daily reconciliation lists them) in both modes.
devices_partitions = dg.DynamicPartitionsDefinition(name="devices")
MAX_DEVICE_GROUPS = 1000


def _group_key(index: int, device_groups: int) -> str:
    """g0..g9 for 10 groups, g00..g49 for 50: they sort as they number."""
    return f"g{index:0{len(str(device_groups - 1))}d}"


def group_keys(device_groups: int) -> list[str]:
    return [_group_key(i, device_groups) for i in range(device_groups)]


def device_group(device_id: str, device_groups: int) -> str:
    """The device's group: stable across processes and releases (not Python's salted hash),
    and the same for as long as the number of groups stays the same."""
    digest = hashlib.sha256(device_id.encode()).digest()
    return _group_key(int.from_bytes(digest[:8], "big") % device_groups, device_groups)


def build_partitions(timezone: str, start_date: str, device_groups: int = 0
                     ) -> dg.MultiPartitionsDefinition:
    """Local dates of ``timezone`` from ``start_date`` x the devices the sensor has seen, or x
    ``device_groups`` groups of devices."""
    # end_offset=1: today's partition exists, so audio recorded today is processed today.
    dates = dg.DailyPartitionsDefinition(start_date=start_date, timezone=timezone, end_offset=1)
    if not device_groups:
        return dg.MultiPartitionsDefinition({DATE: dates, DEVICE: devices_partitions})
    if not 1 <= device_groups <= MAX_DEVICE_GROUPS:
        raise ValueError(f"{device_groups} device groups: expected 1..{MAX_DEVICE_GROUPS}")
    return dg.MultiPartitionsDefinition({
        DATE: dates, GROUP: dg.StaticPartitionsDefinition(group_keys(device_groups))})


def device_group_count(partitions_def: dg.PartitionsDefinition) -> int:
    """N in group mode, 0 with per-device partitions."""
    if not isinstance(partitions_def, dg.MultiPartitionsDefinition) or (
            GROUP not in partitions_def.partition_dimension_names):
        return 0
    return len(partitions_def.get_partitions_def_for_dimension(GROUP).get_partition_keys())


@dataclass(frozen=True)
class DeviceDay:
    device_id: str
    date: str

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        """Its key with per-device partitions (``partition_key_of`` in either mode)."""
        return dg.MultiPartitionKey({DATE: self.date, DEVICE: self.device_id})

    def __str__(self) -> str:
        return f"{self.device_id} {self.date}"


def partition_key_of(day: DeviceDay, device_groups: int) -> dg.MultiPartitionKey:
    """The partition a device-day belongs to: its own, or its group's on that date."""
    if not device_groups:
        return day.partition_key
    return dg.MultiPartitionKey({DATE: day.date,
                                 GROUP: device_group(day.device_id, device_groups)})


@dataclass(frozen=True)
class GroupDay:
    """A (date, group) partition: the devices of ``group`` on ``date``."""

    group: str
    date: str

    def __str__(self) -> str:
        return f"{self.group} {self.date}"


def _split(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(date, device or group) of a key."""
    if isinstance(key, dg.MultiPartitionKey):
        parts = key.keys_by_dimension
        return parts.get(DATE) or "", parts.get(DEVICE) or parts.get(GROUP) or ""
    # A plain string from a tag-launched run: dimensions sort by name, date first.
    pieces = str(key).split("|")
    if len(pieces) != 2:
        raise InvalidIdentifier(f"malformed partition key {key!r}: expected "
                                "'YYYY-MM-DD|device_id' (or 'YYYY-MM-DD|group')")
    return pieces[0], pieces[1]


def parse_partition_key(key: str | dg.MultiPartitionKey, device_groups: int = 0
                        ) -> DeviceDay | GroupDay:
    """Accepts a MultiPartitionKey or the plain 'YYYY-MM-DD|device' (or '|group') string a
    tag-launched run gives; raises a clear error for anything else, or for a key of the other
    mode."""
    date, second = _split(key)
    date = validate_date(date)
    if device_groups:
        groups = group_keys(device_groups)
        if second not in groups:
            raise InvalidIdentifier(f"partition key {key!r}: expected a group {groups[0]}.."
                                    f"{groups[-1]} (WATCHME_DEVICE_GROUPS={device_groups})")
        return GroupDay(second, date)
    return DeviceDay(validate_device_id(second), date)
