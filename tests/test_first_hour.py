"""The first hour, as a newcomer has it: `make demo`, then the UI on the same DAGSTER_HOME.

`python -m watchme_pipeline demo` (what `make demo` runs) materializes the sample day into
DAGSTER_HOME; the webserver started on that home then shows the six assets materialized for
the sample partition, with their checks and the chart's numbers, through its GraphQL API; a
headless Chromium screenshot of the mood_chart partition page is kept in test-artifacts/.
"""

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_webserver_e2e import (
    ARTIFACTS,
    ASSETS,
    ROOT,
    Dagster,
    dagster_env,
    headless_chromium,
    prepare_home,
    wait_for,
)

from watchme_pipeline.stages import STAGES

DEVICE, DATE = "demo-device", "2025-07-18"  # the demo's own default is yesterday
PARTITION = f"{DATE}|{DEVICE}"


def demo(env: dict) -> str:
    """`make demo`, as a newcomer runs it (on this session's venv, a temp home and data)."""
    proc = subprocess.run(["make", "demo", f"VENV={Path(sys.executable).parents[1]}",
                           f"DEMO_ARGS=--date {DATE} --seconds 8"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def first_hour(tmp_path_factory, tiny_models):
    tmp = tmp_path_factory.mktemp("first-hour")
    home, data = prepare_home(tmp)
    cached = ROOT / "data" / "models" / "whisper-base"  # `make weights` here: no download
    if cached.is_dir():
        (data / "models" / "whisper-base").symlink_to(cached)
    env = dagster_env(home, data)
    t0 = time.perf_counter()
    first = demo(env)
    print(f"make demo: {time.perf_counter() - t0:.1f}s")
    second = demo(env)
    server = Dagster(tmp, daemon=False)
    yield first, second, server
    server.stop()


def test_demo_says_which_models_and_where_things_are(first_hour):
    first, second, _ = first_hour
    lines = first.splitlines()
    # First thing the demo prints: each model stage, its model id, and whether it is a
    # stand-in. Whisper is real once `make weights` could fetch it (the demo tries).
    start = next(i for i, line in enumerate(lines) if line.startswith("speakers "))
    # The speaker encoder's weights ship in its wheel: real, whatever the profile.
    assert re.match(r"speakers +resemblyzer-0\.1\.4 +\(real weights\)", lines[start])
    assert lines[start - 1].startswith(".venv") or "watchme_pipeline demo" in lines[start - 1]
    start += 1
    whisper = lines[start]
    assert re.match(r"transcripts +base\+faster-whisper-int8 +\(real weights\)", whisper) or (
        re.match(r"transcripts +tiny-whisper\+faster-whisper-int8 +\(tiny random-weight "
                 r"stand-in", whisper) and "going on with the tiny Whisper stand-in" in first)
    assert re.match(r"event_scores +tiny-events +\(tiny random-weight stand-in",
                    lines[start + 1])
    assert re.match(r"emotion_scores +tiny-emotion", lines[start + 2])
    assert lines[start + 3].startswith("audio store ")
    assert lines[start + 4].startswith("results ") and "sqlite" in lines[start + 4]
    assert "12-30 is broken on purpose" in first
    assert f"materialized {len(STAGES)} assets" in first and "(success)" in first
    url = ("http://127.0.0.1:3000/assets/mood_chart?view=partitions&partition="
           "2025-07-18%7Cdemo-device")
    assert f"in the UI (`make dev`): {url}" in first
    # A second demo: the results are there already, and it says how to recompute.
    assert "nothing was pending" in second and "nothing was pending" not in first
    assert "recompute: true" in second


def materializations(server: Dagster, asset: str) -> list[dict]:
    return server.query(
        """query($key: AssetKeyInput!, $partitions: [String!]) {
             assetOrError(assetKey: $key) { ... on Asset {
               assetMaterializations(partitions: $partitions) {
                 partition runId metadataEntries { label __typename
                   ... on FloatMetadataEntry { floatValue }
                   ... on IntMetadataEntry { intValue }
                   ... on TextMetadataEntry { text } } } } } }""",
        {"key": {"path": [asset]}, "partitions": [PARTITION]})["assetOrError"][
            "assetMaterializations"]


def test_the_ui_opens_on_the_sample_day_materialized(first_hour):
    _, _, server = first_hour
    runs = set()
    for asset in ASSETS:
        mats = materializations(server, asset)
        assert len(mats) == 2 and {m["partition"] for m in mats} == {PARTITION}, asset
        runs |= {m["runId"] for m in mats}
    assert len(runs) == 2  # one run per demo, all six assets in each
    latest = {e["label"]: e for e in materializations(server, "mood_chart")[0]["metadataEntries"]}
    for label in ("average_score", "positive_hours", "negative_hours", "neutral_hours"):
        assert latest[label]["__typename"] == "FloatMetadataEntry", latest[label]
    assert latest["recorded_slots"]["intValue"] == 37
    assert latest["failed_slots"]["intValue"] == 1
    assert "37 recorded slots" in latest["insights"]["text"]
    for asset, check in [("raw_audio", "failed_slots_below_threshold"),
                         ("mood_chart", "no_slot_left_pending"), ("mood_chart", "scores_valid")]:
        executions = server.query(
            """query($key: AssetKeyInput!, $name: String!) {
                 assetCheckExecutions(assetKey: $key, checkName: $name, limit: 10) {
                   status runId partition } }""",
            {"key": {"path": [asset]}, "name": check})["assetCheckExecutions"]
        assert {e["runId"] for e in executions} == runs, (check, executions)
        assert all(e["status"] == "SUCCEEDED" and e["partition"] == PARTITION
                   for e in executions), (check, executions)


def test_kind_tags_match_the_configuration(first_hour):
    _, _, server = first_hour
    nodes = server.query("""{ assetNodes { assetKey { path } kinds } }""")["assetNodes"]
    kinds = {n["assetKey"]["path"][0]: set(n["kinds"]) for n in nodes}
    assert kinds["raw_audio"] == {"python", "folder", "sqlite"}
    assert kinds["transcripts"] == {"pytorch", "sqlite"}
    assert kinds["mood_chart"] == {"python", "sqlite", "folder"}


def test_the_chart_page_in_a_browser(first_hour):
    _, _, server = first_hour
    with headless_chromium() as browser:
        browser.get(f"{server.url}/assets/mood_chart?view=partitions&partition="
                    "2025-07-18%7Cdemo-device")
        wait_for(lambda: "average_score" in browser.page_source, 120,
                 "the mood_chart partition page did not show its metadata")
        time.sleep(2)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "mood_chart_partition.png"))
        text = browser.find_element("tag name", "body").text
        assert "2025-07-18|demo-device" in text and "recorded_slots" in text, text[:3000]


def listening_addresses(port: int) -> set[str]:
    """IPv4/IPv6 addresses with a socket listening on ``port`` (from /proc/net)."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(".".join(str(b) for b in reversed(raw)))
                else:
                    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                    found.add(b"".join(words).hex())
    return found


def test_make_dev_serves_the_ui_on_loopback_only(tmp_path, tiny_models):
    """`make dev` itself: the UI answers on 127.0.0.1:3000, and nothing listens on 3000 on any
    other address (the webserver is for this machine's user, not the network). Started again,
    it keeps the sample day it wrote the first time: no audio file is rewritten."""
    assert not listening_addresses(3000), "port 3000 is taken before the test"
    home, data = prepare_home(tmp_path)
    env = {**dagster_env(home, data), "WATCHME_MODEL_PROFILE": "tiny"}
    first = make_dev(env, tmp_path / "first.log", check_loopback=True)
    assert "wrote 38 recordings for demo-device" in first
    files = {p: (p.stat().st_mtime_ns, p.stat().st_size)
             for p in (data / "audio" / "files").rglob("*.*")}
    # 38 recordings, and with the neural voice the wearer's enrollment recording.
    assert len([p for p in files if p.name == "audio.wav"]) == 38
    again = make_dev(env, tmp_path / "again.log")
    assert "already in" in again and "kept, not rewritten" in again
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in files} == files


def make_dev(env: dict, log: Path, check_loopback: bool = False) -> str:
    """Start `make dev`, wait for the UI on 127.0.0.1:3000, stop it; its output."""
    import os
    import signal
    import urllib.request

    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "dev", f"VENV={Path(sys.executable).parents[1]}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def answers():
            try:
                with urllib.request.urlopen("http://127.0.0.1:3000/server_info", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(answers, 240, "make dev did not answer on 127.0.0.1:3000")
        if check_loopback:
            assert listening_addresses(3000) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        # make can stop before what dagster dev started (its webserver, daemon and code
        # servers, in process groups of their own): the rest of the session goes too, so
        # nothing holds port 3000 or the instance for the tests after it.
        kill_session(proc.pid)
        proc.wait(timeout=30)
        wait_for(lambda: not listening_addresses(3000), 30, "port 3000 still held")
    return log.read_text()


def kill_session(session_id: int) -> None:
    """SIGKILL every process of a session (``start_new_session=True`` made it)."""
    import os
    import signal

    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
