"""What the sensors request: one run per partition with new recordings.

Both sensors (listing and queue mode) plan device-days; here they become Dagster run requests.
With per-device partitions a device-day is its own partition. In group mode
(WATCHME_DEVICE_GROUPS) the device-days of one group and date become one run of the (date,
group) partition, whose run config names the devices with new recordings, so the run touches
those devices only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import dagster as dg

from watchme_pipeline.partitions import DeviceDay, partition_key_of


@dataclass(frozen=True)
class DayRun:
    """A device-day with new recordings, and the run key that names them."""

    day: DeviceDay
    keys: list[str]
    run_key: str


@dataclass(frozen=True)
class PartitionRun:
    partition_key: dg.MultiPartitionKey
    days: list[DayRun]
    run_key: str
    grouped: bool

    @property
    def keys(self) -> list[str]:
        return [k for d in self.days for k in d.keys]

    def request(self) -> dg.RunRequest:
        devices = sorted({d.day.device_id for d in self.days})
        return dg.RunRequest(
            run_key=self.run_key, partition_key=self.partition_key,
            tags={"watchme/new_files": str(len(self.keys)),
                  **({"watchme/devices": str(len(devices))} if self.grouped else {})},
            # Group mode: only the devices with new recordings (settings.devices).
            run_config=({"resources": {"settings": {"config": {"devices": devices}}}}
                        if self.grouped else {}),
        )


def partition_runs(day_runs: list[DayRun], device_groups: int) -> list[PartitionRun]:
    """The runs for these device-days: one each, or one per (date, group) in group mode (its
    run key derived from its device-days', so the same new recordings make the same key)."""
    if not device_groups:
        return [PartitionRun(d.day.partition_key, [d], d.run_key, False) for d in day_runs]
    by_partition: dict[str, list[DayRun]] = {}
    for run in day_runs:
        by_partition.setdefault(str(partition_key_of(run.day, device_groups)), []).append(run)
    runs = []
    for key, days in by_partition.items():
        digest = hashlib.sha1("\n".join(sorted(d.run_key for d in days)).encode()
                              ).hexdigest()[:16]
        runs.append(PartitionRun(partition_key_of(days[0].day, device_groups), days,
                                 f"{key}:{digest}", True))
    return runs
