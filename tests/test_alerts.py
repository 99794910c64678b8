"""Alerts through real receivers on loopback (SMTP, an HTTP webhook), the sensors evaluated with
``build_sensor_context`` on a moving clock, against a real result store."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from alert_sinks import SmtpSink, WebhookSink

from watchme_pipeline.alerts import (
    AlertPolicy,
    FailureAlertState,
    failure_reason,
    plan_failure_alert,
)
from watchme_pipeline.definitions import build_definitions
from watchme_pipeline.resources import SqlResultStore
from watchme_pipeline.resources.alert_channels import AlertChannels
from watchme_pipeline.sensors.alerts import build_alert_sensors, build_digest
from watchme_pipeline.settings import load_deployment

TZ = ZoneInfo("Asia/Tokyo")
# 2025-07-19 10:00 in Tokyo: "yesterday" is 2025-07-18.
NOW = dt.datetime(2025, 7, 19, 10, 0, tzinfo=TZ).astimezone(dt.UTC)
POLICY = AlertPolicy(window_s=300, chart_deadline=dt.time(6, 0), silent_after_h=3,
                     digest_at=dt.time(7, 0), ui_url="http://ui.example:3000")
SECRET = "sup3r-s3cret-value"


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def sinks():
    smtp, hook = SmtpSink(user="alerts", password=SECRET), WebhookSink()
    yield smtp, hook
    smtp.stop()
    hook.stop()


def channels_for(smtp: SmtpSink | None, hook: WebhookSink | None, **overrides) -> AlertChannels:
    fields = {}
    if smtp:
        fields.update(email_to=["ops@example.org"], smtp_host="127.0.0.1",
                      smtp_port=smtp.port, smtp_security="none", smtp_user="alerts",
                      smtp_password=SECRET)
    if hook:
        fields.update(webhook_url=hook.url)
    return AlertChannels(**{**fields, **overrides})


def failure(run_id: str, at: dt.datetime, partition: str = "2025-07-18|dev-1",
            message: str = "raw_audio: Blocking check failed_slots_below_threshold failed"
            ) -> dict:
    return {"run_id": run_id, "job_name": "device_day_job", "partition": partition,
            "steps": "raw_audio", "error_class": "DagsterAssetCheckFailedError",
            "message": message, "failed_at": at}


def sensors(clock: Clock) -> dict[str, dg.SensorDefinition]:
    return {s.name: s for s in build_alert_sensors(POLICY, now=clock)}


def tick(sensor: dg.SensorDefinition, store, channels, cursor: str | None,
         instance: dg.DagsterInstance | None = None):
    context = dg.build_sensor_context(cursor=cursor, instance=instance,
                                      resources={"result_store": store,
                                                 "alert_channels": channels})
    result = sensor(context)
    return result, context.cursor


def summary(result: dg.SensorResult) -> str:
    """What the tick said: its figures (a skip reason when nothing was reported)."""
    return result.skip_reason.skip_message if result.skip_reason else ""


def test_the_first_failure_goes_out_at_once_and_a_burst_is_grouped():
    state = FailureAlertState()
    message, state = plan_failure_alert(state, [failure("r1", NOW)], NOW, POLICY)
    assert message.kind == "run_failure"
    assert message.title == "run failed: 2025-07-18|dev-1 (DagsterAssetCheckFailedError)"
    assert "http://ui.example:3000/runs/r1" in message.body and "step: raw_audio" in message.body
    # 14 more fail within the window: nothing now, one message with their count at its end.
    burst = [failure(f"b{i}", NOW + dt.timedelta(seconds=10 + i)) for i in range(14)]
    message, state = plan_failure_alert(state, burst, NOW + dt.timedelta(seconds=60), POLICY)
    assert message is None and state.held_count == 14 and len(state.held) == 10
    # The same failures read again (the cursor's >= read) are not counted twice.
    message, state = plan_failure_alert(state, burst[-3:], NOW + dt.timedelta(seconds=120),
                                        POLICY)
    assert message is None and state.held_count == 14
    message, state = plan_failure_alert(state, [], NOW + dt.timedelta(seconds=300), POLICY)
    assert message.title == "14 runs failed (DagsterAssetCheckFailedError)"
    assert "14 runs failed within 300 s" in message.body and "and 4 more" in message.body
    assert state.held_count == 0 and state.last_sent == (NOW + dt.timedelta(seconds=300)
                                                         ).isoformat()


def test_failure_alerts_reach_mail_and_webhook_grouped_and_without_secrets(
        sinks, tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHME_ALERT_EMAIL_PASSWORD", SECRET)
    smtp, hook = sinks
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    clock = Clock(NOW)
    sensor = sensors(clock)["failure_alerts"]
    channels = channels_for(smtp, hook)
    # A message that quotes the password (a connection string in an error, say).
    store.record_run_failure(failure("run-1", NOW - dt.timedelta(seconds=5),
                                     message=f"mood_chart: login to db with {SECRET} refused"))
    result, cursor = tick(sensor, store, channels, None)
    assert "sent 2" in summary(result)  # one mail, one webhook post
    assert len(smtp.messages) == 1 and len(hook.posts) == 1 and smtp.logins == ["alerts"]
    mail = smtp.messages[0]
    assert mail["Subject"] == "[WatchMe] run failed: 2025-07-18|dev-1 " \
                              "(DagsterAssetCheckFailedError)"
    assert mail["To"] == "ops@example.org" and mail["X-WatchMe-Alert"] == "run_failure"
    for text in smtp.texts() + hook.texts():
        assert SECRET not in text and "***" in text
        assert "http://ui.example:3000/runs/run-1" in text and "partition: 2025-07-18|dev-1" \
            in text
    # Three more within the group window: held, then one message with the count.
    for i in range(3):
        store.record_run_failure(failure(f"run-{i + 2}", NOW + dt.timedelta(seconds=20 + i),
                                         partition=f"2025-07-18|dev-{i + 2}"))
    clock.now = NOW + dt.timedelta(seconds=60)
    result, cursor = tick(sensor, store, channels, cursor)
    assert len(smtp.messages) == 1 and json.loads(cursor)["state"]["held_count"] == 3
    clock.now = NOW + dt.timedelta(seconds=301)
    result, cursor = tick(sensor, store, channels, cursor)
    assert len(smtp.messages) == 2 and len(hook.posts) == 2
    grouped = smtp.messages[1]
    assert grouped["Subject"] == "[WatchMe] 3 runs failed (DagsterAssetCheckFailedError)"
    body = grouped.get_payload(decode=True).decode()
    assert all(f"2025-07-18|dev-{i}" in body for i in (2, 3, 4)) and SECRET not in body
    # Quiet again: nothing more is sent on later ticks.
    clock.now = NOW + dt.timedelta(seconds=900)
    tick(sensor, store, channels, cursor)
    assert len(smtp.messages) == 2 and len(hook.posts) == 2


def test_a_channel_that_fails_is_logged_and_retried_next_tick(tmp_path):
    smtp, hook = SmtpSink(), WebhookSink(fail_first=1)
    try:
        store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
        sensor = sensors(Clock(NOW))["failure_alerts"]
        store.record_run_failure(failure("run-1", NOW))
        # The SMTP host is unreachable (nothing listens on its port), the webhook answers 500.
        broken = channels_for(None, hook, email_to=["ops@example.org"], smtp_host="127.0.0.1",
                              smtp_port=smtp.port + 1 if smtp.port < 65535 else 1,
                              smtp_security="none")
        result, cursor = tick(sensor, store, broken, None)
        kept = json.loads(cursor)["undelivered"]
        assert sorted(k["channel"] for k in kept) == ["email", "webhook"]
        assert all(k["attempts"] == 1 for k in kept) and hook.refused == 1
        assert "sent 0" in summary(result) and "undelivered 2" in summary(result)
        # Both work again: each channel gets the alert exactly once, nothing is left.
        working = channels_for(smtp, hook, smtp_user=None, smtp_password=None)
        result, cursor = tick(sensor, store, working, cursor)
        assert len(smtp.messages) == 1 and len(hook.posts) == 1
        assert json.loads(cursor)["undelivered"] == []
        tick(sensor, store, working, cursor)
        assert len(smtp.messages) == 1 and len(hook.posts) == 1
    finally:
        smtp.stop()
        hook.stop()


def test_without_a_channel_alerts_are_logged_and_never_recorded_as_sent(sinks, tmp_path,
                                                                         capsys):
    smtp, hook = sinks
    defs = build_definitions({"WATCHME_DATA_DIR": str(tmp_path), "WATCHME_MODEL_PROFILE": "tiny"})
    channels = defs.resources["alert_channels"]
    assert channels.channels() == []
    alert_sensors = {s.name: s for s in defs.sensors
                     if s.name in ("failure_alerts", "overdue_charts", "silent_devices",
                                   "daily_digest")}
    assert len(alert_sensors) == 4
    for sensor in alert_sensors.values():
        assert "No channel: alerts are logged, not sent (set WATCHME_ALERT_WEBHOOK_URL or " \
               "WATCHME_ALERT_EMAIL_TO)." in sensor.description
    store = defs.resources["result_store"]
    store.record_run_failure(failure("run-1", NOW))
    capsys.readouterr()
    result, cursor = tick(sensors(Clock(NOW))["failure_alerts"], store, channels, None)
    assert summary(result).endswith("sent 0, logged 1, undelivered 0")
    state = json.loads(cursor)["state"]
    assert state["last_sent"] is None and state["held_count"] == 0  # logged, not "sent"
    assert json.loads(cursor)["undelivered"] == []
    logged = capsys.readouterr().err  # the tick's log
    assert logged.count("alert not sent, no channel: alerts are logged, not sent") == 1
    assert "run failed: 2025-07-18|dev-1" in logged
    assert smtp.messages == [] and hook.posts == []
    # The digest too: logged once a day, and recorded as logged, not sent.
    clock = Clock(NOW)
    digest = sensors(clock)["daily_digest"]
    with dg.instance_for_test() as instance:
        result, cursor = tick(digest, store, channels, None, instance)
        assert json.loads(cursor) == {"logged": "2025-07-18", "undelivered": []}
        result, cursor = tick(digest, store, channels, cursor, instance)
        assert "digests 0" in summary(result)


def test_loading_the_code_location_without_a_channel_warns_once(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHME_ALERT")}
    code = ("import os, watchme_pipeline.definitions as d; "
            "d.build_definitions(os.environ); d.device_day_job_from_env()")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "WATCHME_DATA_DIR":
                                                              str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "No channel: alerts are logged" in line]
    assert len(said) == 1
    assert "WATCHME_ALERT_WEBHOOK_URL or WATCHME_ALERT_EMAIL_TO" in said[0]


def test_a_failed_run_reaches_the_webhook_naming_partition_step_and_reason_once(
        sinks, resources, instance):
    """A real failed run (an unknown device), recorded by record_failed_runs, sent by
    failure_alerts to a webhook on loopback."""
    from conftest import ALL_ASSETS, materialize_day

    from watchme_pipeline.sensors import record_failed_runs

    _, hook = sinks
    store = resources["result_store"]
    result = materialize_day(resources, instance, device="ghost-device", assets=ALL_ASSETS,
                             raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failed = [e for e in instance.all_logs(result.run_id)
              if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"][0]
    record_failed_runs(dg.build_run_status_sensor_context(
        sensor_name="record_failed_runs", dagster_event=failed.dagster_event,
        dagster_instance=instance, dagster_run=run).for_run_failure(), result_store=store)
    clock = Clock(dt.datetime.now(dt.UTC))
    result, _ = tick(sensors(clock)["failure_alerts"], store, channels_for(None, hook), None)
    assert "sent 1" in summary(result)
    [text] = hook.texts()
    print(text)
    assert "partition: 2025-07-18|ghost-device (job __ephemeral_asset_job__)" in text
    assert "\nstep: raw_audio\n" in text
    assert "\nreason: unknown device 'ghost-device': no recordings under files/ghost-device/" \
        in text
    assert text.count("raw_audio") == 1 and text.count("unknown device") == 1
    assert "dagster._core" not in text and "Failure:" not in text


def test_alerts_test_sends_one_message_per_channel_and_says_which_worked(sinks, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import free_port

    _, hook = sinks
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATCHME_ALERT")}
    base["WATCHME_DATA_DIR"] = str(tmp_path)

    def alerts_test(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "watchme_pipeline", "alerts", "--test"],
                              env={**base, **env}, capture_output=True, text=True, timeout=120)

    done = alerts_test()
    assert done.returncode == 2 and "No channel: alerts are logged, not sent" in done.stderr
    # A webhook that answers, and a mail server that is not there.
    done = alerts_test(WATCHME_ALERT_WEBHOOK_URL=hook.url,
                       WATCHME_ALERT_EMAIL_TO="ops@example.org",
                       WATCHME_ALERT_EMAIL_SMTP_HOST="127.0.0.1",
                       WATCHME_ALERT_EMAIL_SMTP_PORT=str(free_port()),
                       WATCHME_ALERT_EMAIL_SMTP_SECURITY="none")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("email    FAILED: email: ConnectionRefusedError")
    assert lines[1] == "webhook  delivered"
    assert len(hook.posts) == 1 and "test alert" in hook.texts()[0]
    assert "T0KEN" not in done.stdout + done.stderr


def test_alert_settings_are_validated_and_secrets_stay_env_vars():
    with pytest.raises(ValueError, match="WATCHME_DIGEST_AT='7am'"):
        load_deployment({"WATCHME_DIGEST_AT": "7am"})
    with pytest.raises(ValueError, match="WATCHME_ALERT_EMAIL_TO: 'ops' is not a mail"):
        load_deployment({"WATCHME_ALERT_EMAIL_TO": "ops"})
    with pytest.raises(ValueError, match="WATCHME_ALERT_GROUP_S='-5'"):
        load_deployment({"WATCHME_ALERT_GROUP_S": "-5"})
    env = {"WATCHME_ALERT_EMAIL_TO": "a@x.org, b@x.org", "WATCHME_ALERT_EMAIL_PASSWORD": SECRET,
           "WATCHME_ALERT_WEBHOOK_URL": "https://hooks.example/T0KEN", "WATCHME_TIMEZONE": "UTC",
           "WATCHME_CHART_DEADLINE": "05:30", "WATCHME_ALERT_GROUP_S": "120"}
    deployment = load_deployment(env)
    assert SECRET not in repr(deployment) and "T0KEN" not in repr(deployment)
    assert deployment.alerts.policy.chart_deadline == dt.time(5, 30)
    assert deployment.alerts.policy.window_s == 120 and deployment.alerts.policy.timezone == "UTC"
    channels = build_definitions(env).resources["alert_channels"]
    assert channels.channels() == ["email", "webhook"]
    assert channels.email_to == ["a@x.org", "b@x.org"]


def register(store, device: str, date: str, slots: list[str], error: str | None = None):
    rows = []
    for slot in slots:
        local = dt.datetime.fromisoformat(f"{date}T{slot.replace('-', ':')}:00").replace(tzinfo=TZ)
        rows.append({"device_id": device, "file_path": f"files/{device}/{date}/{slot}/audio.wav",
                     "recorded_at": local.astimezone(dt.UTC), "local_date": date,
                     "time_block": slot, "decodes": error is None})
    store.register_recordings(rows)
    if error:
        store.set_status(device, [r["file_path"] for r in rows], "transcriptions", "failed",
                         error)


def chart(store, device: str, date: str) -> None:
    store.replace_partition("vibe_whisper_summary", device, date,
                            [{"device_id": device, "date": date, "vibe_scores": [0] * 48,
                              "processed_at": NOW}])


def test_overdue_charts_alert_once_after_the_deadline_and_report_the_check(sinks, tmp_path):
    smtp, hook = sinks
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    for device in ("dev-a", "dev-b", "dev-c"):
        register(store, device, "2025-07-18", ["09-00", "09-30"])
    register(store, "dev-d", "2025-07-17", ["09-00"])  # another day: not expected yesterday
    chart(store, "dev-a", "2025-07-18")
    clock = Clock(dt.datetime(2025, 7, 19, 5, 59, tzinfo=TZ))
    sensor = sensors(clock)["overdue_charts"]
    channels = channels_for(smtp, hook)
    result, cursor = tick(sensor, store, channels, None)  # before 06:00: not yet due
    assert result.asset_events == [] and smtp.messages == []
    clock.now = dt.datetime(2025, 7, 19, 6, 0, tzinfo=TZ)
    result, cursor = tick(sensor, store, channels, cursor)
    [evaluation] = result.asset_events
    assert evaluation.check_name == "charts_on_time" and evaluation.passed is False
    assert evaluation.asset_key == dg.AssetKey("mood_chart")
    assert evaluation.metadata["devices_recorded"].value == 3
    assert evaluation.metadata["overdue"].value == 2
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    assert smtp.messages[0]["Subject"] == "[WatchMe] 2 mood charts overdue for 2025-07-18"
    body = smtp.texts()[0]
    assert "dev-b, dev-c" in body and "dev-a" not in body and "dev-d" not in body
    clock.now += dt.timedelta(hours=1)  # reported once per day
    result, cursor = tick(sensor, store, channels, cursor)
    assert result.asset_events == [] and len(smtp.messages) == 1


def test_a_silent_device_is_reported_once_and_clears_when_it_records(sinks, tmp_path):
    smtp, hook = sinks
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    register(store, "dev-quiet", "2025-07-18", ["21-00", "21-30"])
    register(store, "dev-busy", "2025-07-18", ["21-00"])
    register(store, "dev-busy", "2025-07-19", ["09-30"])  # 30 min before NOW
    clock = Clock(NOW)
    sensor = sensors(clock)["silent_devices"]
    channels = channels_for(smtp, hook)
    result, cursor = tick(sensor, store, channels, None)
    assert json.loads(cursor)["silent"] == {
        "dev-quiet": dt.datetime(2025, 7, 18, 21, 30, tzinfo=TZ).astimezone(dt.UTC).isoformat()}
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    assert smtp.messages[0]["Subject"] == "[WatchMe] 1 devices silent for 3 h"
    assert "dev-quiet: last recording 2025-07-18 21:30 (Asia/Tokyo)" in smtp.texts()[0]
    assert "dev-busy" not in smtp.texts()[0]
    clock.now += dt.timedelta(minutes=30)
    result, cursor = tick(sensor, store, channels, cursor)  # still silent: not again
    assert len(smtp.messages) == 1 and "newly_silent 0" in summary(result)
    register(store, "dev-quiet", "2025-07-19", ["10-30"])  # it records again: cleared
    result, cursor = tick(sensor, store, channels, cursor)
    assert json.loads(cursor)["silent"] == {} and "resumed 1" in summary(result)
    clock.now += dt.timedelta(hours=4)  # and silent again later: reported again
    result, cursor = tick(sensor, store, channels, cursor)
    assert sorted(json.loads(cursor)["silent"]) == ["dev-busy", "dev-quiet"]
    assert len(smtp.messages) == 2 and "2 devices silent" in smtp.messages[1]["Subject"]


def test_the_daily_digest_is_one_message_with_the_days_figures(sinks, tmp_path):
    smtp, hook = sinks
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    register(store, "dev-a", "2025-07-18", ["09-00", "09-30", "10-00"])
    register(store, "dev-a", "2025-07-18", ["10-30", "11-00"],
             error="files/dev-a/2025-07-18/10-30/audio.wav: not a readable audio file (Format)")
    register(store, "dev-b", "2025-07-18", ["09-00"],
             error="transcripts: RuntimeError: model crashed")
    register(store, "dev-b", "2025-07-19", ["09-30"])
    chart(store, "dev-a", "2025-07-18")
    store.record_run_failure(failure("run-1", dt.datetime(2025, 7, 18, 12, 0, tzinfo=TZ)))
    store.record_run_failure(failure("run-0", dt.datetime(2025, 7, 17, 12, 0, tzinfo=TZ)))
    instance = dg.DagsterInstance.ephemeral()

    @dg.asset
    def a_stage() -> int:
        return 1

    clock = Clock(dt.datetime(2025, 7, 19, 6, 59, tzinfo=TZ))
    sensor = sensors(clock)["daily_digest"]
    channels = channels_for(smtp, hook)
    result, cursor = tick(sensor, store, channels, None, instance)
    assert smtp.messages == []  # before 07:00
    clock.now = dt.datetime(2025, 7, 19, 7, 0, tzinfo=TZ)
    digest = build_digest(store, instance, clock.now, POLICY)
    assert digest.recorded == 2 and digest.completed == 1 and digest.failed_runs == 1
    assert digest.failed_slots == {"not a readable audio file": 2,
                                   "transcripts: RuntimeError: model crashed": 1}
    assert digest.overdue == ["dev-b"] and digest.slowest_stage is None
    result, cursor = tick(sensor, store, channels, cursor, instance)
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    text = smtp.texts()[0]
    assert text.startswith("[WatchMe] daily digest for 2025-07-18")
    for line in ("Device-days completed: 1 of 2 that recorded.", "Failed runs: 1.",
                 "Failed slots: 3:", "    2  not a readable audio file",
                 "    1  transcripts: RuntimeError: model crashed",
                 "Overdue charts: 1: dev-b",
                 "Silent devices: 1: dev-a"):  # recorded yesterday, nothing since 11:00
        assert line in text, line
    clock.now += dt.timedelta(hours=2)
    tick(sensor, store, channels, cursor, instance)
    assert len(smtp.messages) == 1  # once a day
    # The slowest stage comes from Dagster's own step records.
    assert dg.materialize([a_stage], instance=instance).success
    now = dt.datetime.now(dt.UTC)
    recent = build_digest(store, instance, now + dt.timedelta(days=1), POLICY)
    assert recent.slowest_stage[0] == "a_stage" and recent.slowest_stage[3] == 1
    assert 0 <= recent.slowest_stage[1] < 60


def test_failure_reasons_count_alike_failures_together():
    assert failure_reason("files/d/2025-07-18/09-00/audio.wav: not a readable audio file "
                          "(Format not recognised)") == "not a readable audio file"
    assert failure_reason("x.wav: 12 NaN/Inf samples") == "N NaN/Inf samples"
    assert failure_reason(None) == "unknown"
