"""The sensors that tell a person: failed runs, overdue charts, silent devices, the digest.

Each is a plain Dagster sensor run by the daemon: it reads what can be new (failures since its
cursor; one or two dates of the result store), decides with ``watchme_pipeline.alerts`` and
sends through the ``alert_channels`` resource. A channel that fails (an unreachable SMTP host,
a webhook answering 500) is logged and its message kept in the cursor for the next tick: a
sensor never fails a run and never drops an alert because a channel was down for a while.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable

import dagster as dg

from watchme_pipeline.alerts import (
    AlertPolicy,
    Digest,
    FailureAlertState,
    Message,
    OverdueReport,
    digest_message,
    failure_reason,
    is_past,
    local_days,
    overdue_message,
    overdue_report,
    plan_failure_alert,
    silent_changes,
    silent_devices,
    silent_message,
    slowest_stage,
)
from watchme_pipeline.resources import ResultStore
from watchme_pipeline.resources.alert_channels import (
    CHANNEL_VARIABLES,
    NO_CHANNEL,
    AlertChannels,
    AlertDeliveryError,
)
from watchme_pipeline.stages.mood_chart import STAGE as MOOD_CHART

MAX_UNDELIVERED = 50  # messages kept for retry per sensor; older ones are dropped, with a log
FIRST_LOOKBACK = dt.timedelta(hours=1)  # a new failure-alert cursor starts this far back
CHARTS_ON_TIME = "charts_on_time"
DIGEST_RUNS = 200  # the digest's slowest stage is measured over at most this many runs


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def deliver(channels: AlertChannels, messages: list[Message], undelivered: list[dict],
            log) -> tuple[list[dict], dict[str, int]]:
    """Send the kept messages first, then the new ones, to every configured channel; return
    what is still undelivered (per channel) and counts. Without channels each message is
    logged as a WARNING in full (identifiers, counts and reasons: never a person's words)."""
    configured = channels.channels()
    if not configured:
        for m in messages:
            log.warning(f"alert not sent, {NO_CHANNEL} (set {' or '.join(CHANNEL_VARIABLES)}):"
                        f"\n{m.title}\n{m.body}")
        return [], {"sent": 0, "logged": len(messages), "undelivered": 0}
    queue = list(undelivered) + [{"channel": c, "kind": m.kind, "title": m.title,
                                  "body": m.body, "attempts": 0}
                                 for m in messages for c in configured]
    left, sent = [], 0
    for item in queue:
        if item["channel"] not in configured:
            continue  # a channel switched off since: nothing to deliver it to
        try:
            channels.send(Message(item["kind"], item["title"], item["body"]), item["channel"])
            sent += 1
        except AlertDeliveryError as exc:
            item = {**item, "attempts": item["attempts"] + 1}
            log.warning(f"alert {item['kind']} not delivered (attempt {item['attempts']}, "
                        f"retried next tick): {exc}")
            left.append(item)
    if len(left) > MAX_UNDELIVERED:
        log.error(f"{len(left) - MAX_UNDELIVERED} undelivered alerts dropped: a channel has "
                  f"failed for {MAX_UNDELIVERED} messages")
        left = left[-MAX_UNDELIVERED:]
    return left, {"sent": sent, "undelivered": len(left)}


def _send_and_finish(context: dg.SensorEvaluationContext, channels: AlertChannels,
                     cursor: dict, messages: list[Message], figures: dict,
                     asset_events: list | None = None) -> dg.SensorResult:
    """Send (the kept messages first), keep what failed in the cursor, store the cursor; the
    tick says its figures (counts only)."""
    cursor["undelivered"], sent = deliver(channels, messages, cursor.get("undelivered", []),
                                          context.log)
    figures = {**figures, **sent}
    context.update_cursor(json.dumps(cursor, sort_keys=True))
    summary = ", ".join(f"{k} {v}" for k, v in figures.items())
    if asset_events:
        context.log.info(summary)
        return dg.SensorResult(asset_events=asset_events)
    return dg.SensorResult(skip_reason=summary)


def _cursor(context: dg.SensorEvaluationContext) -> dict:
    return json.loads(context.cursor) if context.cursor else {}


def charts_report(store: ResultStore, date: str) -> OverdueReport:
    """Which devices recorded on ``date`` and have no mood chart for it."""
    recorded = set(store.devices_recording([date]).device_id)
    return overdue_report(date, recorded,
                          store.devices_with_rows(MOOD_CHART.table.name, date))


def charts_check_evaluation(report: OverdueReport, policy: AlertPolicy
                            ) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(MOOD_CHART.name), check_name=CHARTS_ON_TIME,
        passed=not report.overdue, severity=dg.AssetCheckSeverity.WARN,
        metadata=charts_metadata(report, policy))


def charts_metadata(report: OverdueReport, policy: AlertPolicy) -> dict:
    return {"date": report.date, "deadline": f"{policy.chart_deadline:%H:%M} {policy.timezone}",
            "devices_recorded": report.recorded, "devices_charted": report.charted,
            "overdue": len(report.overdue),
            "overdue_devices": dg.MetadataValue.json(report.overdue[:100])}


def build_charts_on_time_check(policy: AlertPolicy) -> dg.AssetChecksDefinition:
    """Yesterday's charts, fleet-wide: evaluated by the overdue_charts sensor after the
    deadline, and runnable by hand from the asset's Checks tab."""

    @dg.asset_check(asset=MOOD_CHART.name, name=CHARTS_ON_TIME, blocking=False,
                    description="Every device that recorded yesterday has yesterday's mood "
                    f"chart by {policy.chart_deadline:%H:%M} ({policy.timezone}); evaluated "
                    "by the overdue_charts sensor, which alerts with the devices.")
    def charts_on_time(result_store: ResultStore) -> dg.AssetCheckResult:
        report = charts_report(result_store, local_days(_now(), policy.timezone)[1])
        return dg.AssetCheckResult(passed=not report.overdue,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   metadata=charts_metadata(report, policy))

    return charts_on_time


def build_alert_sensors(policy: AlertPolicy, now: Callable[[], dt.datetime] = _now,
                        channels: tuple[str, ...] = ()) -> list[dg.SensorDefinition]:
    """The four alert sensors for this deployment's policy and configured ``channels`` (their
    descriptions say where alerts go; ``now``: tests move the clock)."""
    where = (f" Sends to: {', '.join(channels)}." if channels else
             f" {NO_CHANNEL.capitalize()} (set {' or '.join(CHANNEL_VARIABLES)}).")

    def sensor(name: str, interval_s: int, description: str):
        return dg.sensor(name=name, minimum_interval_seconds=interval_s,
                         default_status=dg.DefaultSensorStatus.RUNNING,
                         description=description + where)

    return alert_sensors(policy, now, sensor)


def step_seconds(instance: dg.DagsterInstance, since: dt.datetime, until: dt.datetime,
                 limit: int = DIGEST_RUNS) -> dict[str, list[float]]:
    """Durations of the steps of the runs created in [since, until), per step."""
    # In UTC: the run storage compares naive UTC and drops another zone's offset.
    records = instance.get_run_records(
        filters=dg.RunsFilter(created_after=since.astimezone(dt.UTC),
                              created_before=until.astimezone(dt.UTC)), limit=limit)
    durations: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time and stats.end_time:
                durations[stats.step_key].append(stats.end_time - stats.start_time)
    return dict(durations)


def alert_sensors(policy: AlertPolicy, now: Callable[[], dt.datetime],
                  alert_sensor: Callable) -> list[dg.SensorDefinition]:
    """The sensors, each declared with ``alert_sensor(name, interval, description)``."""

    @alert_sensor("failure_alerts", 10,
                  "Sends failed runs (recorded by record_failed_runs) to the alert channels: "
                   f"the first at once, later ones within {policy.window_s} s grouped into one "
                  "message with their count.")
    def failure_alerts(context: dg.SensorEvaluationContext, result_store: ResultStore,
                       alert_channels: AlertChannels) -> dg.SensorResult:
        cursor, moment = _cursor(context), now()
        state = FailureAlertState(**cursor.get("state", {}))
        after = (dt.datetime.fromisoformat(state.watermark) if state.watermark
                 else moment - FIRST_LOOKBACK)
        failures = result_store.run_failures_since(after).to_dict("records")
        message, state = plan_failure_alert(state, failures, moment, policy,
                                            sending=bool(alert_channels.channels()))
        cursor["state"] = state.to_dict()
        return _send_and_finish(context, alert_channels, cursor, [message] if message else [],
                                {"failures_read": len(failures), "waiting": state.held_count})

    @alert_sensor("overdue_charts", 60,
                  "After the chart deadline, checks that every device that recorded yesterday "
                   f"has its mood chart (check {CHARTS_ON_TIME}) and alerts once with the "
                  "devices that have none.")
    def overdue_charts(context: dg.SensorEvaluationContext, result_store: ResultStore,
                       alert_channels: AlertChannels) -> dg.SensorResult:
        cursor, moment = _cursor(context), now()
        yesterday = local_days(moment, policy.timezone)[1]
        messages, events = [], []
        due = is_past(moment, policy.timezone, policy.chart_deadline)
        if due and cursor.get("checked") != yesterday:
            report = charts_report(result_store, yesterday)
            events.append(charts_check_evaluation(report, policy))
            if report.overdue:
                messages.append(overdue_message(report, policy))
            cursor["checked"] = yesterday
        return _send_and_finish(context, alert_channels, cursor, messages,
                                {"evaluated": len(events), "alerts": len(messages)}, events)

    @alert_sensor("silent_devices", 60,
                  "Reports once each device that recorded yesterday and nothing for "
                   f"{policy.silent_after_h:g} h; it clears itself when the device records "
                  "again.")
    def silent_devices_sensor(context: dg.SensorEvaluationContext, result_store: ResultStore,
                              alert_channels: AlertChannels) -> dg.SensorResult:
        cursor, moment = _cursor(context), now()
        today, yesterday, _ = local_days(moment, policy.timezone)
        silent_now = silent_devices(result_store.devices_recording([yesterday, today]),
                                    yesterday, moment, policy.silent_after_h)
        newly, resumed = silent_changes(cursor.get("silent", {}), silent_now)
        reported = {d: t for d, t in cursor.get("silent", {}).items() if d in silent_now}
        cursor["silent"] = {**reported, **newly}
        return _send_and_finish(context, alert_channels, cursor,
                                [silent_message(newly, policy)] if newly else [],
                                {"silent": len(silent_now), "newly_silent": len(newly),
                                 "resumed": len(resumed)})

    @alert_sensor("daily_digest", 60,
                   f"Once a day after {policy.digest_at:%H:%M} ({policy.timezone}): yesterday's "
                  "completed device-days, failed slots by reason, overdue charts, silent "
                  "devices and the slowest stage, in one message.")
    def daily_digest(context: dg.SensorEvaluationContext, result_store: ResultStore,
                     alert_channels: AlertChannels) -> dg.SensorResult:
        cursor, moment = _cursor(context), now()
        yesterday = local_days(moment, policy.timezone)[1]
        messages = []
        done = yesterday in (cursor.get("sent"), cursor.get("logged"))
        if is_past(moment, policy.timezone, policy.digest_at) and not done:
            digest = build_digest(result_store, context.instance, moment, policy)
            messages.append(digest_message(digest, policy))
            # "sent" only for what went to a channel: a logged digest is not a sent one.
            cursor["sent" if alert_channels.channels() else "logged"] = yesterday
        return _send_and_finish(context, alert_channels, cursor, messages,
                                {"digests": len(messages)})

    return [failure_alerts, overdue_charts, silent_devices_sensor, daily_digest]


def build_digest(store: ResultStore, instance: dg.DagsterInstance, moment: dt.datetime,
                 policy: AlertPolicy) -> Digest:
    """Yesterday in figures, as of ``moment``."""
    today, yesterday, local = local_days(moment, policy.timezone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    end = start + dt.timedelta(days=1)
    recordings = store.devices_recording([yesterday, today])
    report = charts_report(store, yesterday)
    failed = store.failed_slots(yesterday)
    reasons: dict[str, int] = defaultdict(int)
    for error in failed.error:
        reasons[failure_reason(error)] += 1
    runs = store.run_failures_since(start.astimezone(dt.UTC), limit=10_000)
    failed_runs = int((runs.failed_at < end.astimezone(dt.UTC)).sum()) if len(runs) else 0
    return Digest(
        date=yesterday, recorded=report.recorded, completed=report.charted,
        failed_slots=dict(reasons), failed_runs=failed_runs, overdue=report.overdue,
        silent=silent_devices(recordings, yesterday, moment, policy.silent_after_h),
        slowest_stage=slowest_stage(step_seconds(instance, start, end)),
    )
