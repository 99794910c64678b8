"""Alerts end to end: dagster-daemon runs the alert sensors against real runs that fail, a chart
that is overdue and a device that went silent; the messages arrive at an SMTP server and a
webhook receiver on loopback (the webhook refuses the first post: it is retried)."""

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import pytest
from alert_sinks import SmtpSink, WebhookSink
from conftest import free_port
from test_webserver_e2e import (
    Dagster,
    add_device,
    launch_device_day,
    prepare_home,
    run_status,
    wait_for,
)

from watchme_pipeline.resources import SqlResultStore

SECRET = "smtp-pa55-0f-the-test"
AWS_SECRET = "aws-secret-0f-the-test"
GROUP_S = 45
FAILED_DAYS = [("fail-1", "2025-07-20"), ("fail-2", "2025-07-20"), ("fail-3", "2025-07-20")]


@pytest.fixture(scope="module")
def alerting(tmp_path_factory, tiny_models):
    smtp, hook = SmtpSink(user="alerts", password=SECRET), WebhookSink(fail_first=1)
    port = free_port()
    env = {
        "WATCHME_ALERT_EMAIL_TO": "ops@example.org", "WATCHME_ALERT_EMAIL_SMTP_HOST": "127.0.0.1",
        "WATCHME_ALERT_EMAIL_SMTP_PORT": str(smtp.port),
        "WATCHME_ALERT_EMAIL_SMTP_SECURITY": "none", "WATCHME_ALERT_EMAIL_USER": "alerts",
        "WATCHME_ALERT_EMAIL_PASSWORD": SECRET, "WATCHME_ALERT_WEBHOOK_URL": hook.url,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "WATCHME_ALERT_GROUP_S": str(GROUP_S), "WATCHME_CHART_DEADLINE": "00:00",
        "WATCHME_SILENT_AFTER_H": "1", "WATCHME_DIGEST_AT": "00:00",
        "WATCHME_UI_URL": f"http://127.0.0.1:{port}",
    }
    tmp = tmp_path_factory.mktemp("alerts")
    # Yesterday (the devices' day) a device recorded and then fell silent; it has no chart.
    tz = ZoneInfo("Asia/Tokyo")
    yesterday = (dt.datetime.now(tz) - dt.timedelta(days=1)).replace(hour=0, minute=30)
    _, data = prepare_home(tmp)
    SqlResultStore(database_url=f"sqlite:///{data / 'watchme.db'}").register_recordings([{
        "device_id": "quiet-1", "file_path": f"files/quiet-1/{yesterday:%Y-%m-%d}/00-30/audio.wav",
        "recorded_at": yesterday.astimezone(dt.UTC), "local_date": f"{yesterday:%Y-%m-%d}",
        "time_block": "00-30", "decodes": True}])
    server = Dagster(tmp, env=env, port=port)
    yield server, smtp, hook, f"{yesterday:%Y-%m-%d}"
    server.stop()
    smtp.stop()
    hook.stop()


def test_the_daemon_sends_failures_grouped_overdue_charts_silent_devices_and_a_digest(alerting):
    dagster, smtp, hook, yesterday = alerting
    for device, date in FAILED_DAYS:  # days of corrupt files: each run fails its check
        for slot in ("09-00", "09-30"):
            dagster.store.write(f"files/{device}/{date}/{slot}/audio.wav", b"RIFF\x00garbage")
        add_device(dagster, device)

    def subjects() -> list[str]:
        return [m["Subject"] for m in smtp.messages]

    def failure_mails() -> list:
        return [m for m in smtp.messages if m["X-WatchMe-Alert"] == "run_failure"]

    def counted(mail) -> int:
        found = re.search(r"\] (\d+) runs failed", mail["Subject"])
        return int(found.group(1)) if found else 1

    # One run fails and is alerted; then two more fail within GROUP_S of that alert.
    run_ids = [launch_device_day(dagster, *FAILED_DAYS[0])]
    wait_for(failure_mails, 300, f"the first failure alert did not arrive: {subjects()}")
    run_ids += [launch_device_day(dagster, device, date) for device, date in FAILED_DAYS[1:]]
    wait_for(lambda: sum(counted(m) for m in failure_mails()) >= 3, 300,
               f"failure alerts did not arrive: {subjects()}")
    wait_for(lambda: {"overdue_charts", "silent_devices", "digest"} <=
               {m["X-WatchMe-Alert"] for m in smtp.messages}, 180,
               f"overdue, silent or digest did not arrive: {subjects()}")
    # Another tick of each 60 s sensor after its message: nothing is sent twice.
    first_daily = min(t for m, t in zip(smtp.messages, smtp.received_at)
                      if m["X-WatchMe-Alert"] != "run_failure")
    time.sleep(max(0.0, first_daily + 65 - time.time()))
    kinds = [m["X-WatchMe-Alert"] for m in smtp.messages]
    print("mails:", subjects())

    statuses = [run_status(dagster, run_id) for run_id in run_ids]
    assert [s["status"] for s in statuses] == ["FAILURE"] * 3
    first, *rest = failure_mails()
    # The first failure at once, in full; the others (within GROUP_S of it) in one message.
    assert first["Subject"] == "[WatchMe] run failed: 2025-07-20|fail-1 " \
                               "(DagsterAssetCheckFailedError)"
    body = first.get_payload(decode=True).decode()
    assert "step: raw_audio" in body and f"{dagster.url}/runs/" in body
    assert "failed_slots_below_threshold" in body
    assert len(rest) == 1 and rest[0]["Subject"].startswith("[WatchMe] 2 runs failed")
    first_at = smtp.received_at[kinds.index("run_failure")]
    grouped_at = smtp.received_at[kinds.index("run_failure", kinds.index("run_failure") + 1)]
    print(f"failed run -> its message: {first_at - statuses[0]['endTime']:.1f} s; "
          f"last failed run of the burst -> the grouped message: "
          f"{grouped_at - max(s['endTime'] for s in statuses[1:]):.1f} s")
    assert kinds.count("overdue_charts") == 1 and kinds.count("silent_devices") == 1
    assert kinds.count("digest") == 1 and kinds.count("run_failure") == 2
    texts = smtp.texts()
    overdue = texts[kinds.index("overdue_charts")]
    assert f"1 mood charts overdue for {yesterday}" in overdue and "quiet-1" in overdue
    silent = texts[kinds.index("silent_devices")]
    assert f"quiet-1: last recording {yesterday} 00:30 (Asia/Tokyo)" in silent
    digest = texts[kinds.index("digest")]
    print("digest:\n" + digest)
    for line in ("Device-days completed: 0 of 1 that recorded.", "Overdue charts: 1: quiet-1",
                 "Silent devices: 1: quiet-1"):
        assert line in digest, line
    # The webhook refused its first post; it got every message all the same, once.
    wait_for(lambda: len(hook.posts) == len(smtp.messages), 60, "webhook retries")
    assert hook.refused == 1
    for text in texts + hook.texts():
        assert SECRET not in text and AWS_SECRET not in text and "T0KEN" not in text
    assert smtp.logins and set(smtp.logins) == {"alerts"}
