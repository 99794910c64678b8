"""new_audio_sensor: lists the audio store and requests runs for device-days with new files.

It lists only what can be new: the device folders, and each device's keys from a couple of
days before its newest date (S3's StartAfter; the key layout sorts a device's keys by date),
so a tick grows with the devices, not with their history. Fleets use queue mode instead
(``upload_queue.py``): a listing is one request per device each tick.

The cursor is a time watermark plus the keys seen near it, not a since-key: a deleted object
cannot break it, objects with equal ``LastModified`` are told apart by key, and objects that
appear in a listing with a slightly older timestamp than the watermark (uploads in flight
while a tick lists) are still inside the ``LAG`` window and so are never missed. A tick
requests at most ``max_runs`` device-days; the rest stay new for the next tick.
"""


import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

from watchme_pipeline.partitions import DATE, DeviceDay, device_group_count, devices_partitions
from watchme_pipeline.resources import AudioStore, StoredObject
from watchme_pipeline.sensors.run_requests import DayRun, partition_runs
from watchme_pipeline.slots import KEY_PREFIX, InvalidIdentifier, is_enrollment_key, parse_key
from watchme_pipeline.store import ResultStore

LAG = dt.timedelta(minutes=5)
MAX_RUNS_PER_TICK = 20
# Each device is listed from this many days before the newest date seen for it: uploads that
# land late by up to that much are found; older ones need a run from the UI (or queue mode).
LISTING_LOOKBACK_DAYS = 2
# Devices seen for the first time are listed whole (their history) only while a tick has been
# listing for less than this; the others wait for the next tick, which stays inside 60 s.
LISTING_BUDGET_S = 30.0


@dataclass
class TickPlan:
    cursor: str
    requests: dict[DeviceDay, list[str]] = field(default_factory=dict)  # day -> new keys
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    waiting: int = 0  # device-days left for the next tick

    def run_key(self, day: DeviceDay) -> str:
        digest = hashlib.sha1("\n".join(sorted(self.requests[day])).encode()).hexdigest()[:16]
        return f"{day.date}|{day.device_id}:{digest}"


def _ident(obj: StoredObject) -> str:
    """A short fingerprint of (key, LastModified): a re-upload of a key is new again."""
    return hashlib.sha1(f"{obj.key}\0{obj.last_modified.isoformat()}".encode()).hexdigest()[:12]


def _load_cursor(cursor: str | None) -> tuple[dt.datetime | None, set[str]]:
    if not cursor:
        return None, set()
    data = json.loads(cursor)
    wm = data.get("watermark")
    return (dt.datetime.fromisoformat(wm) if wm else None), set(data.get("seen", []))


def _device_of(key: str) -> str:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 else ""


def plan_tick(objects: Iterable[StoredObject], cursor: str | None, max_runs: int,
              valid_dates: set[str] | None = None,
              first_listed: frozenset[str] = frozenset()) -> TickPlan:
    """Pure planning of one tick from a listing and the previous cursor. Devices in
    ``first_listed`` are listed for the first time: all their objects are new, whatever their
    age (they may be older than the watermark)."""
    watermark, seen = _load_cursor(cursor)
    listing = [(o, _ident(o)) for o in objects]
    new = sorted(
        ((o, i) for o, i in listing
         if (watermark is None or o.last_modified >= watermark - LAG
             or _device_of(o.key) in first_listed) and i not in seen),
        key=lambda oi: (oi[0].last_modified, oi[0].key),
    )
    plan = TickPlan(cursor="")
    consumed: set[str] = set()
    waiting_days: dict[DeviceDay, list[StoredObject]] = {}
    for obj, ident in new:
        if is_enrollment_key(obj.key):  # read by the speakers stage, not a slot's recording
            consumed.add(ident)
            continue
        try:
            parsed = parse_key(obj.key)
            if valid_dates is not None and parsed.date not in valid_dates:
                raise InvalidIdentifier(f"date {parsed.date} is outside the partitions")
        except InvalidIdentifier as exc:
            plan.skipped[obj.key] = str(exc)
            consumed.add(ident)
            continue
        day = DeviceDay(parsed.device_id, parsed.date)
        if day in plan.requests or len(plan.requests) < max_runs:
            plan.requests.setdefault(day, []).append(obj.key)
            consumed.add(ident)
        else:
            waiting_days.setdefault(day, []).append(obj)
    plan.waiting = len(waiting_days)
    waiting = [o for objs in waiting_days.values() for o in objs]
    if waiting:
        new_wm = min(o.last_modified for o in waiting)
    else:
        new_wm = max([o.last_modified for o, _ in listing] + ([watermark] if watermark else []),
                     default=None)
    # Remember only what is still listed and still inside the window: the cursor stays small
    # and a deleted object simply drops out of it.
    keep = seen | consumed
    pruned = sorted(
        i for o, i in listing
        if i in keep and new_wm is not None and o.last_modified >= new_wm - LAG
    )
    plan.cursor = json.dumps(
        {"watermark": new_wm.isoformat() if new_wm else None, "seen": pruned}, sort_keys=True
    )
    return plan


def build_new_audio_sensor(partitions_def: dg.MultiPartitionsDefinition,
                           job_name: str = "device_day_job") -> dg.SensorDefinition:
    """The sensor for the graph's partitions (keys outside its dates are skipped)."""
    dates = partitions_def.get_partitions_def_for_dimension(DATE)
    device_groups = device_group_count(partitions_def)

    @dg.sensor(
        name="new_audio_sensor",
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Lists the audio store; adds new devices to the `devices` partitions and "
        f"requests a run per device-day with new recordings (at most {MAX_RUNS_PER_TICK} a "
        "tick; one per date and device group with WATCHME_DEVICE_GROUPS). Uploads of a "
        "forgotten device are refused and counted (in the cursor) until it is re-admitted.",
    )
    def new_audio_sensor(context: dg.SensorEvaluationContext, audio_store: AudioStore,
                         result_store: ResultStore) -> dg.SensorResult:
        valid = set(dates.get_partition_keys(dynamic_partitions_store=context.instance))
        return sensor_result(context, audio_store, valid, device_groups, result_store)

    return new_audio_sensor


def recent_objects(audio_store: AudioStore, newest: dict[str, str], valid_dates: set[str],
                   budget_s: float = LISTING_BUDGET_S
                   ) -> tuple[list[StoredObject], dict[str, str], frozenset[str]]:
    """What can be new: every device folder's keys from ``LISTING_LOOKBACK_DAYS`` before the
    newest date seen for it (the layout sorts a device's keys by date, so StartAfter skips its
    history); a device not seen before is listed whole, once, while the tick's budget lasts
    (the rest on later ticks). Returns the objects, the newest date of each device (dates
    outside the partitions do not count: a bogus far-future folder must not hide the real
    days) and the devices listed for the first time."""
    objects, newest, first, start = [], dict(newest), set(), time.monotonic()
    folders = audio_store.list_folders(KEY_PREFIX)
    # Known devices first: they are cheap and must be listed every tick.
    for device in sorted(folders, key=lambda d: d not in newest):
        if device not in newest:
            if first and time.monotonic() - start > budget_s:
                continue  # listed whole on a later tick (one a tick at least: progress)
            first.add(device)
            newest[device] = ""  # listed; "" until a key with a valid date is found
        start_after = None
        if newest[device]:
            since = dt.date.fromisoformat(newest[device]) - dt.timedelta(
                days=LISTING_LOOKBACK_DAYS)
            start_after = f"{KEY_PREFIX}/{device}/{since.isoformat()}"
        for obj in audio_store.list_objects(f"{KEY_PREFIX}/{device}/", start_after=start_after):
            objects.append(obj)
            date = obj.key.split("/")[2] if obj.key.count("/") >= 3 else ""
            if date in valid_dates and date > newest[device]:
                newest[device] = date
    return objects, newest, frozenset(first)


def refuse_forgotten(plan: TickPlan, result_store: ResultStore, refused: dict[str, int]
                     ) -> tuple[dict[str, int], dict[str, int]]:
    """Drop the requests of forgotten devices (privacy/forget.py). Returns the uploads refused
    per device since each was forgotten (kept in the cursor; a re-admitted device drops out)
    and those refused in this tick. The read is of the audit, for this tick's devices only."""
    forgotten = result_store.forgotten(set(refused) | {d.device_id for d in plan.requests})
    counts = {d: n for d, n in refused.items() if d in forgotten}
    now: dict[str, int] = {}
    for day in [d for d in plan.requests if d.device_id in forgotten]:
        now[day.device_id] = now.get(day.device_id, 0) + len(plan.requests.pop(day))
    return {d: counts.get(d, 0) + now.get(d, 0) for d in {*counts, *now}}, now


def sensor_result(context: dg.SensorEvaluationContext, audio_store: AudioStore,
                  valid_dates: set[str], device_groups: int = 0,
                  result_store: ResultStore | None = None) -> dg.SensorResult:
    previous = json.loads(context.cursor) if context.cursor else {}
    newest = previous.get("newest", {})
    objects, newest, first = recent_objects(audio_store, newest, valid_dates)
    plan = plan_tick(objects, context.cursor, MAX_RUNS_PER_TICK, valid_dates, first)
    refused = previous.get("refused", {})
    if result_store is not None:
        refused, now = refuse_forgotten(plan, result_store, refused)
        for device, count in now.items():
            context.log.warning(f"{count} uploads of forgotten device {device} refused "
                                f"(`python -m watchme_pipeline readmit {device}` accepts "
                                "new ones again)")
    plan.cursor = json.dumps({**json.loads(plan.cursor), "newest": newest,
                              **({"refused": refused} if refused else {})}, sort_keys=True)
    for key, reason in plan.skipped.items():
        context.log.warning(f"skipped {key}: {reason}")
    known = set(context.instance.get_dynamic_partitions(devices_partitions.name))
    new_devices = sorted({d.device_id for d in plan.requests} - known)
    if plan.waiting:
        context.log.info(f"{len(plan.requests)} device-days requested, {plan.waiting} wait "
                         "for the next tick")
    return dg.SensorResult(
        run_requests=[run.request() for run in partition_runs(
            [DayRun(day, keys, plan.run_key(day)) for day, keys in plan.requests.items()],
            device_groups)],
        dynamic_partitions_requests=(
            [devices_partitions.build_add_request(new_devices)] if new_devices else []
        ),
        cursor=plan.cursor,
    )
