"""Every asset is partitioned by local date x device."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from watchme_pipeline.slots import InvalidIdentifier, validate_date, validate_device_id

DATE, DEVICE = "date", "device"
devices_partitions = dg.DynamicPartitionsDefinition(name="devices")


def build_partitions(timezone: str, start_date: str) -> dg.MultiPartitionsDefinition:
    """Local dates of ``timezone`` from ``start_date`` x the devices the sensor has seen."""
    return dg.MultiPartitionsDefinition({
        # end_offset=1: today's partition exists, so audio recorded today is processed today.
        DATE: dg.DailyPartitionsDefinition(start_date=start_date, timezone=timezone,
                                           end_offset=1),
        DEVICE: devices_partitions,
    })


@dataclass(frozen=True)
class DeviceDay:
    device_id: str
    date: str

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({DATE: self.date, DEVICE: self.device_id})

    def __str__(self) -> str:
        return f"{self.device_id} {self.date}"


def parse_partition_key(key: str | dg.MultiPartitionKey) -> DeviceDay:
    """Accepts a MultiPartitionKey or the plain 'YYYY-MM-DD|device' string a tag-launched run
    gives; raises a clear error for anything else."""
    if isinstance(key, dg.MultiPartitionKey):
        parts = key.keys_by_dimension
        date, device = parts.get(DATE), parts.get(DEVICE)
    else:
        pieces = str(key).split("|")
        if len(pieces) != 2:
            raise InvalidIdentifier(
                f"malformed partition key {key!r}: expected 'YYYY-MM-DD|device_id'"
            )
        date, device = pieces
    return DeviceDay(validate_device_id(device), validate_date(date))
