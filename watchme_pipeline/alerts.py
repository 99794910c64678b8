"""What an operator is told, decided in plain Python: failed runs (the first at once, a burst
grouped), overdue charts, silent devices and the daily digest. The sensors in
``sensors/alerts.py`` feed these functions from the result store and Dagster's instance and
send what they return through ``resources/alert_channels.py``.

Messages hold identifiers, counts and error messages with secrets removed, never transcripts
or audio: they leave the system, to mail boxes and chat rooms.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

import pandas as pd

from watchme_pipeline.secrets import redact

DETAILED = 10  # failures spelled out in a grouped message; the rest are counted
NAMED = 50  # devices named in one message; the rest are counted


@dataclass(frozen=True)
class Message:
    kind: str  # run_failure, overdue_charts, silent_devices, digest
    title: str
    body: str


@dataclass(frozen=True)
class AlertPolicy:
    """When to tell someone, from the deployment (WATCHME_ALERT_*, docs/operations.md, "Alerts")."""

    timezone: str = "Asia/Tokyo"
    window_s: int = 300  # failures within this many seconds of the last alert go into one
    chart_deadline: dt.time = dt.time(6, 0)  # yesterday's charts exist by then (local time)
    silent_after_h: float = 3.0  # a device that recorded yesterday and nothing for this long
    digest_at: dt.time = dt.time(7, 0)  # the daily digest, local time
    ui_url: str = "http://127.0.0.1:3000"  # the Dagster UI, for links to runs

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"


def parse_clock(value: str, var: str) -> dt.time:
    """'HH:MM' of a configuration variable, or a ValueError naming it."""
    if not re.fullmatch(r"\d{1,2}:\d{2}", value or ""):
        raise ValueError(f"{var}={value!r}: expected HH:MM (local time)")
    hours, minutes = map(int, value.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{var}={value!r}: expected HH:MM (local time)")
    return dt.time(hours, minutes)


def local_days(now: dt.datetime, timezone: str) -> tuple[str, str, dt.datetime]:
    """(today, yesterday, now) in the devices' time zone."""
    local = now.astimezone(ZoneInfo(timezone))
    today = local.date()
    return today.isoformat(), (today - dt.timedelta(days=1)).isoformat(), local


def is_past(now: dt.datetime, timezone: str, clock: dt.time) -> bool:
    """Whether today's ``clock`` (local time) has passed."""
    return local_days(now, timezone)[2].time() >= clock


# -- failed runs ---------------------------------------------------------------------------


@dataclass
class FailureAlertState:
    """The failure-alert sensor's cursor: which failures it has seen, which wait for the
    group window, and when it last sent."""

    watermark: str | None = None  # failed_at of the newest failure seen (ISO)
    seen: list[str] = field(default_factory=list)  # run ids failed at the watermark
    held: list[dict] = field(default_factory=list)  # the first DETAILED waiting failures
    held_count: int = 0  # all waiting failures
    last_sent: str | None = None  # when the last failure alert was sent (ISO)

    def to_dict(self) -> dict:
        return asdict(self)


def _brief(record: dict) -> dict:
    keep = ("run_id", "job_name", "partition", "steps", "error_class", "message")
    return {k: redact(str(record.get(k) or "")) for k in keep}


def plan_failure_alert(state: FailureAlertState, failures: list[dict], now: dt.datetime,
                       policy: AlertPolicy, sending: bool = True
                       ) -> tuple[Message | None, FailureAlertState]:
    """Take the failures recorded since the cursor; return the message to send now, if any.

    The first failure after a quiet spell goes out at once; failures within ``window_s`` of the
    last alert wait and go out together, with their count, when the window ends. Not
    ``sending`` (no channel: the message is only logged), ``last_sent`` stays as it was.
    """
    seen = set(state.seen)
    watermark, new_seen = state.watermark, list(state.seen)
    for record in failures:
        failed_at = _iso(record["failed_at"])
        if record["run_id"] in seen or (watermark and failed_at < watermark):
            continue
        if watermark is None or failed_at > watermark:
            watermark, new_seen = failed_at, []
        new_seen.append(record["run_id"])
        seen.add(record["run_id"])
        if len(state.held) < DETAILED:
            state.held.append(_brief(record))
        state.held_count += 1
    state.watermark, state.seen = watermark, new_seen
    if not state.held_count:
        return None, state
    if state.last_sent and (now - dt.datetime.fromisoformat(state.last_sent)).total_seconds() \
            < policy.window_s:
        return None, state
    message = failure_message(state.held, state.held_count, policy)
    state.held, state.held_count = [], 0
    if sending:
        state.last_sent = now.isoformat()
    return message, state


def _iso(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _failure_lines(record: dict, policy: AlertPolicy) -> list[str]:
    return [
        f"partition: {record['partition'] or '-'} (job {record['job_name']})",
        f"step: {record['steps'] or 'no step'}",
        f"reason: {record['message'][:1000]}",
        f"run: {policy.run_url(record['run_id'])}",
    ]


def failure_message(failures: list[dict], count: int, policy: AlertPolicy) -> Message:
    """One failure in full, or a burst: the first DETAILED in brief, the rest counted."""
    if count == 1:
        record = failures[0]
        return Message("run_failure",
                       f"run failed: {record['partition'] or record['job_name']} "
                       f"({record['error_class']})",
                       "\n".join(_failure_lines(record, policy)))
    lines = [f"{count} runs failed within {policy.window_s} s of each other "
             f"(grouped: one message per {policy.window_s} s).", ""]
    for record in failures:
        first = record["message"].splitlines()[0][:200] if record["message"] else ""
        lines.append(f"- {record['partition'] or '-'}: {record['steps'] or 'no step'}: "
                     f"{first} ({record['error_class']})  {policy.run_url(record['run_id'])}")
    if count > len(failures):
        lines.append(f"... and {count - len(failures)} more (all in the run_failures table).")
    classes = Counter(r["error_class"] for r in failures)
    return Message("run_failure", f"{count} runs failed ({', '.join(sorted(classes))})",
                   "\n".join(lines))


# -- overdue charts ------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueReport:
    date: str
    recorded: int  # devices that recorded that day
    charted: int  # of those, devices with a chart
    overdue: list[str]  # devices that recorded and have no chart


def overdue_report(date: str, recorded_devices: set[str], charted_devices: set[str]
                   ) -> OverdueReport:
    recorded = set(recorded_devices)
    return OverdueReport(date, len(recorded), len(recorded & set(charted_devices)),
                         sorted(recorded - set(charted_devices)))


def _named(devices: list[str]) -> str:
    shown = ", ".join(devices[:NAMED])
    return shown + (f" and {len(devices) - NAMED} more" if len(devices) > NAMED else "")


def overdue_message(report: OverdueReport, policy: AlertPolicy) -> Message:
    return Message(
        "overdue_charts",
        f"{len(report.overdue)} mood charts overdue for {report.date}",
        f"No mood_chart for {report.date} at {policy.chart_deadline:%H:%M} ({policy.timezone}) "
        f"for {len(report.overdue)} of the {report.recorded} devices that recorded that day:\n"
        f"{_named(report.overdue)}\n"
        f"Materialize them from the UI: {policy.ui_url.rstrip('/')}/assets/mood_chart",
    )


# -- silent devices ------------------------------------------------------------------------


def silent_devices(last_recordings: pd.DataFrame, yesterday: str, now: dt.datetime,
                   silent_after_h: float) -> dict[str, str]:
    """Devices that recorded ``yesterday`` and nothing in the last ``silent_after_h`` hours:
    device -> its last recording (ISO). ``last_recordings`` has one row per device and local
    date (device_id, local_date, last_recorded_at), for yesterday and today."""
    if last_recordings.empty:
        return {}
    frame = last_recordings.copy()
    frame["last_recorded_at"] = pd.to_datetime(frame.last_recorded_at, utc=True)
    last = frame.groupby("device_id").last_recorded_at.max()
    active = set(frame[frame.local_date == yesterday].device_id)
    cutoff = pd.Timestamp(now - dt.timedelta(hours=silent_after_h))
    return {device: last[device].isoformat() for device in sorted(active)
            if last[device] < cutoff}


def silent_changes(reported: dict[str, str], silent_now: dict[str, str]
                   ) -> tuple[dict[str, str], list[str]]:
    """(newly silent, resumed): a device is reported once and forgotten when it records
    again; one still silent stays reported without another message."""
    newly = {d: t for d, t in silent_now.items() if d not in reported}
    resumed = sorted(d for d in reported if d not in silent_now)
    return newly, resumed


def silent_message(newly: dict[str, str], policy: AlertPolicy) -> Message:
    tz = ZoneInfo(policy.timezone)
    lines = [f"- {device}: last recording "
             f"{dt.datetime.fromisoformat(t).astimezone(tz):%Y-%m-%d %H:%M} ({policy.timezone})"
             for device, t in list(newly.items())[:NAMED]]
    if len(newly) > NAMED:
        lines.append(f"... and {len(newly) - NAMED} more")
    return Message(
        "silent_devices",
        f"{len(newly)} devices silent for {policy.silent_after_h:g} h",
        f"These devices recorded yesterday and nothing for {policy.silent_after_h:g} hours "
        "(each is reported once; it clears itself when it records again):\n" + "\n".join(lines),
    )


# -- the daily digest ------------------------------------------------------------------------


def failure_reason(error: str | None) -> str:
    """A slot's error without the file it names or its detail in parentheses, so alike
    failures count together: 'files/d/2025-07-18/09-00/audio.wav: not a readable audio
    file (Format not recognised)' -> 'not a readable audio file'."""
    text = str(error or "unknown")
    if ": " in text and ("/" in text.split(": ", 1)[0] or "." in text.split(": ", 1)[0]):
        text = text.split(": ", 1)[1]
    text = re.sub(r"\s*\([^)]*\)", "", text).strip()
    return re.sub(r"\d+", "N", text)[:120] or "unknown"


@dataclass(frozen=True)
class Digest:
    date: str
    recorded: int  # device-days with recordings
    completed: int  # of those, device-days with a chart
    failed_slots: dict[str, int]  # reason -> slots
    failed_runs: int
    overdue: list[str]
    silent: dict[str, str]
    slowest_stage: tuple[str, float, float, int] | None  # (step, median s, max s, runs)


def slowest_stage(step_seconds: dict[str, list[float]]) -> tuple[str, float, float, int] | None:
    """The step with the largest median duration: (step, median, max, steps measured)."""
    if not step_seconds:
        return None
    step = max(step_seconds, key=lambda k: float(pd.Series(step_seconds[k]).median()))
    values = pd.Series(step_seconds[step])
    return step, float(values.median()), float(values.max()), len(values)


def digest_message(digest: Digest, policy: AlertPolicy) -> Message:
    lines = [
        f"Device-days completed: {digest.completed} of {digest.recorded} that recorded.",
        f"Failed runs: {digest.failed_runs}.",
    ]
    total = sum(digest.failed_slots.values())
    lines.append(f"Failed slots: {total}" + (":" if total else "."))
    for reason, n in sorted(digest.failed_slots.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {n:5d}  {reason}")
    lines.append(f"Overdue charts: {len(digest.overdue)}"
                 + (f": {_named(digest.overdue)}" if digest.overdue else "."))
    lines.append(f"Silent devices: {len(digest.silent)}"
                 + (f": {_named(sorted(digest.silent))}" if digest.silent else "."))
    if digest.slowest_stage:
        step, median, worst, n = digest.slowest_stage
        lines.append(f"Slowest stage: {step}, median {median:.1f} s, max {worst:.1f} s "
                     f"(over {n} steps).")
    else:
        lines.append("Slowest stage: no steps ran.")
    lines.append(f"UI: {policy.ui_url}")
    return Message("digest", f"daily digest for {digest.date}", "\n".join(lines))
