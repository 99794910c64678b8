"""Slots, audio-store keys and identifier validation.

A day has 48 half-hour slots named ``HH-MM`` (``00-00`` … ``23-30``). Recordings live under
``files/{device_id}/{YYYY-MM-DD}/{HH-MM}/audio.wav`` or, for newer uploads,
``files/{device_id}/{YYYY-MM-DD}/{HH-MM-SS}/audio.wav``. Everything that turns a key into a
partition, a path or a SQL value goes through this module, so it is validated in one place.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

SLOTS_PER_DAY = 48
SLOTS: tuple[str, ...] = tuple(f"{i // 2:02d}-{(i % 2) * 30:02d}" for i in range(SLOTS_PER_DAY))
KEY_PREFIX = "files"

# Device ids become partition keys, folder names and SQL values: letters, digits, '-', '_', '.'
# only, at most 64 characters, never '..' (the seeds' ids are UUIDs and short names).
_DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEY_RE = re.compile(
    r"^(?:(?P<base>.*)/)?files/(?P<device>[^/]*)/(?P<date>[^/]*)/(?P<time>[^/]*)/audio\.wav$"
)
_TIME_RE = re.compile(r"^(?P<h>\d{2})-(?P<m>\d{2})(?:-(?P<s>\d{2}))?$")


class InvalidIdentifier(ValueError):
    """A device id, date, slot or key that must not become a partition, path or SQL value."""


def validate_device_id(device_id: str) -> str:
    if not isinstance(device_id, str) or not _DEVICE_RE.match(device_id) or ".." in device_id:
        raise InvalidIdentifier(
            f"invalid device id {device_id!r}: use 1-64 characters of letters, digits, "
            "'-', '_' or '.', starting with a letter or digit, without '..'"
        )
    return device_id


def validate_date(date: str) -> str:
    if not isinstance(date, str) or not _DATE_RE.match(date):
        raise InvalidIdentifier(f"invalid date {date!r}: expected YYYY-MM-DD")
    try:
        dt.date.fromisoformat(date)
    except ValueError as exc:
        raise InvalidIdentifier(f"impossible date {date!r}: {exc}") from None
    return date



def slot_of(hour: int, minute: int) -> str:
    """The half-hour slot a local time of day falls in."""
    return f"{hour:02d}-{0 if minute < 30 else 30:02d}"



@dataclass(frozen=True)
class RecordingKey:
    """A parsed audio-store key."""

    key: str
    device_id: str
    date: str
    time_part: str  # HH-MM or HH-MM-SS as uploaded
    slot: str
    seconds_of_day: int

    def recorded_at(self, tz: dt.tzinfo) -> dt.datetime:
        day = dt.date.fromisoformat(self.date)
        base = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
        return base + dt.timedelta(seconds=self.seconds_of_day)


def parse_key(key: str) -> RecordingKey:
    """Parse a key of either layout; raise InvalidIdentifier with the reason otherwise."""
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidIdentifier(f"key {key!r} contains control characters")
    m = _KEY_RE.match(key)
    if not m:
        raise InvalidIdentifier(
            f"key {key!r} does not match "
            "files/{device_id}/{YYYY-MM-DD}/{HH-MM[-SS]}/audio.wav"
        )
    device_id = validate_device_id(m["device"])
    date = validate_date(m["date"])
    t = _TIME_RE.match(m["time"])
    if not t:
        raise InvalidIdentifier(f"key {key!r}: time part {m['time']!r} is not HH-MM or HH-MM-SS")
    h, mi, s = int(t["h"]), int(t["m"]), int(t["s"] or 0)
    if h > 23 or mi > 59 or s > 59:
        raise InvalidIdentifier(f"key {key!r}: impossible time {m['time']!r}")
    return RecordingKey(
        key=key,
        device_id=device_id,
        date=date,
        time_part=m["time"],
        slot=slot_of(h, mi),
        seconds_of_day=h * 3600 + mi * 60 + s,
    )


def day_prefix(device_id: str, date: str) -> str:
    return f"{KEY_PREFIX}/{validate_device_id(device_id)}/{validate_date(date)}/"


def enrollment_prefix(device_id: str) -> str:
    """Where the app uploads the wearer's enrollment recordings (stages/speakers.py)."""
    return f"{KEY_PREFIX}/{validate_device_id(device_id)}/enrollment/"


_ENROLLMENT_RE = re.compile(r"^(?:.*/)?files/[^/]+/enrollment/[^/]+\.wav$", re.IGNORECASE)


def is_enrollment_key(key: str) -> bool:
    """An enrollment recording: not a slot's recording, and not a bad key either."""
    return bool(_ENROLLMENT_RE.match(key))


def recording_key(device_id: str, date: str, time_part: str) -> str:
    """The key a recording of ``time_part`` (HH-MM or HH-MM-SS) is stored under."""
    key = f"{day_prefix(device_id, date)}{time_part}/audio.wav"
    parse_key(key)
    return key
