"""Workflows of the Dagster UI, driven through the real webserver's GraphQL API (and the daemon),
then the lineage page in headless Chromium."""

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from conftest import MODEL_CACHE, free_port
from reliability import TEST_VOICES

from watchme_pipeline.resources import LocalAudioStore, SqlResultStore
from watchme_pipeline.sample_data import write_sample_day
from watchme_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
LOCATION, REPOSITORY = "watchme_pipeline", "__repository__"
ASSETS = [s.name for s in STAGES]  # the graph, from the list of stages
# Three dates of one device; the middle one has no recordings (a device that stopped for a day).
BACKFILL = ["2025-07-18|dev-1", "2025-07-19|dev-1", "2025-07-20|dev-1"]
EMPTY = "2025-07-19|dev-1"
CHECKS = [("raw_audio", "failed_slots_below_threshold"), ("raw_audio", "day_has_recordings"),
          ("mood_chart", "no_slot_left_pending"), ("mood_chart", "scores_valid")]


def prepare_home(tmp: Path) -> tuple[Path, Path]:
    """A DAGSTER_HOME with the project's dagster.yaml, and a data folder with the session's
    tiny models (created once; a second call returns the same)."""
    home, data = tmp / "dagster_home", tmp / "data"
    if not home.exists():
        home.mkdir()
        shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        (data / "models").mkdir(parents=True)
        for name in os.listdir(MODEL_CACHE):
            os.symlink(MODEL_CACHE / name, data / "models" / name)
        # Create Dagster's SQLite storages now: the webserver and the daemon starting together
        # on a fresh home can both stamp the schedule storage (two alembic heads), and then
        # neither loads the code location.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.all_instigator_state()
            instance.get_runs(limit=1)
    return home, data


def dagster_env(home: Path, data: Path) -> dict:
    return {**os.environ, "DAGSTER_HOME": str(home), "WATCHME_DATA_DIR": str(data),
            "WATCHME_MODEL_PROFILE": "tiny", "PYTHONUNBUFFERED": "1"}


class Dagster:
    """dagster-webserver and dagster-daemon on a free loopback port, temp DAGSTER_HOME."""

    def __init__(self, tmp: Path, daemon: bool = True, env: dict | None = None,
                 port: int | None = None) -> None:
        self.home, data = prepare_home(tmp)
        self.env = {**dagster_env(self.home, data), **(env or {})}
        self.store = LocalAudioStore(root=str(data / "audio"))
        self.results = SqlResultStore(database_url=f"sqlite:///{data / 'watchme.db'}")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bin_dir = Path(sys.executable).parent
        log = open(tmp / "dagster.log", "w")  # noqa: SIM115
        self.procs = [
            subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml",
                              "-h", "127.0.0.1", "-p", str(self.port)], cwd=ROOT, env=self.env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True),
        ]
        if daemon:
            self.procs.append(
                subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                                 cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True))
        deadline = time.time() + 180
        loaded = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
        while True:  # until the code location has loaded, not only the server
            try:
                if self.query(loaded)["repositoriesOrError"].get("nodes"):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("webserver did not start: " + (tmp / "dagster.log").read_text())
            time.sleep(1)

    def query(self, text: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def stop(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def dagster(tmp_path_factory, tiny_models):
    server = Dagster(tmp_path_factory.mktemp("e2e"))
    yield server
    server.stop()


REPO = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}


def add_device(dagster: Dagster, device: str) -> None:
    result = dagster.query(
        """mutation($repo: RepositorySelector!, $key: String!) {
             addDynamicPartition(repositorySelector: $repo, partitionsDefName: "devices",
                                 partitionKey: $key) { __typename
                                 ... on UnauthorizedError { message }
                                 ... on PythonError { message } } }""",
        {"repo": REPO, "key": device})
    assert result["addDynamicPartition"]["__typename"] in (
        "AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), result


def launch_device_day(dagster: Dagster, device: str, date: str) -> str:
    """Launch device_day_job for one device-day, as the Launchpad does; return the run id."""
    launched = dagster.query(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
           } }""",
        {"params": {"selector": {**REPO, "jobName": "device_day_job"},
                    "executionMetadata": {"tags": [
                        {"key": "dagster/partition", "value": f"{date}|{device}"},
                        {"key": "dagster/partition/date", "value": date},
                        {"key": "dagster/partition/device", "value": device}]}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def run_status(dagster: Dagster, run_id: str) -> dict:
    return dagster.query("""query($id: ID!) { runOrError(runId: $id) {
                              ... on Run { status startTime endTime } } }""",
                         {"id": run_id})["runOrError"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise TimeoutError(what)


def backfill_status(dagster: Dagster, backfill_id: str) -> dict:
    return dagster.query(
        """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
             ... on PartitionBackfill { status numPartitions
                   runs(limit: 100) { runId status } } } }""",
        {"id": backfill_id})["partitionBackfillOrError"]


def launch_backfill(dagster: Dagster, partitions: list[str]) -> str:
    result = dagster.query(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams:
             $params) { __typename ... on LaunchBackfillSuccess { backfillId }
             ... on PythonError { message } } }""",
        {"params": {"assetSelection": [{"path": [a]} for a in ASSETS],
                    "partitionNames": partitions}})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def latest_check(dagster: Dagster, asset: str, check: str, partition: str | None = None) -> dict:
    return dagster.query(
        """query($key: AssetKeyInput!, $name: String!) {
             assetCheckExecutions(assetKey: $key, checkName: $name, limit: 20) {
               status runId partition evaluation { severity description } } }""",
        {"key": {"path": [asset]}, "name": check})["assetCheckExecutions"]


def check_partition_statuses(dagster: Dagster, asset: str) -> dict[str, dict[str, str]]:
    """What the checks list and the Lineage counts show: each check's status per partition
    (check -> partition key -> SUCCEEDED, FAILED, ...), read from the webserver."""
    result = dagster.query(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
             assetChecksOrError { ... on AssetChecks { checks { name partitionStatuses {
               ... on AssetCheckMultiPartitionStatuses { primaryDimensionName ranges {
                 primaryDimStartKey primaryDimEndKey secondaryDim {
                   ... on AssetCheckDefaultPartitionStatuses { succeededPartitions
                       failedPartitions inProgressPartitions skippedPartitions
                       executionFailedPartitions } } } } } } } } } } }""",
        {"key": {"path": [asset]}})["assetNodeOrError"]["assetChecksOrError"]["checks"]
    statuses: dict[str, dict[str, str]] = {}
    for check in result:
        multi = check["partitionStatuses"]
        if multi is None:  # charts_on_time: fleet-wide, not partitioned
            continue
        found = statuses.setdefault(check["name"], {})
        assert multi["primaryDimensionName"] == "date"  # the date, then each device's status
        for span in multi["ranges"]:
            start = dt.date.fromisoformat(span["primaryDimStartKey"])
            end = dt.date.fromisoformat(span["primaryDimEndKey"])
            dates = [(start + dt.timedelta(days=i)).isoformat()
                     for i in range((end - start).days + 1)]
            for field, devices in span["secondaryDim"].items():
                status = field.removesuffix("Partitions").upper()
                status = {"INPROGRESS": "IN_PROGRESS",
                          "EXECUTIONFAILED": "EXECUTION_FAILED"}.get(status, status)
                found.update({f"{date}|{device}": status for date in dates for device in devices})
    return statuses


def test_backfill_checks_failures_and_lineage(dagster):
    for partition in BACKFILL:
        date, device = partition.split("|")
        if partition != EMPTY:
            write_sample_day(dagster.store, device, date, seconds=8, voices=TEST_VOICES)
    add_device(dagster, "dev-1")

    t0 = time.perf_counter()
    backfill_id = launch_backfill(dagster, BACKFILL)
    final = wait_for(lambda: (s := backfill_status(dagster, backfill_id))["status"] in
                     ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED",
                      "CANCELED") and s, 600, "backfill did not finish")
    seconds = time.perf_counter() - t0
    print(f"3-partition backfill: {seconds:.1f}s, {len(final['runs'])} runs")
    # The empty day does not fail the backfill: its assets materialize and say it was empty.
    assert final["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), final
    assert [r["status"] for r in final["runs"]] == ["SUCCESS"]  # one batched run, 3 dates
    for partition in BACKFILL:
        date, device = partition.split("|")
        files = dagster.results.read("audio_files", device, date)
        summary = dagster.results.read("vibe_whisper_summary", device, date)
        assert len(summary) == 1
        if partition == EMPTY:
            assert files.empty and summary.iloc[0].scorer == "no recordings"
            continue
        assert len(files) == 38 and (files.emotion_features_status == "completed").sum() == 37
    raw = dagster.query(
        """{ assetNodeOrError(assetKey: {path: ["raw_audio"]}) { ... on AssetNode {
             assetMaterializations(limit: 10) { partition metadataEntries { label
               ... on IntMetadataEntry { intValue } } } } } }""")["assetNodeOrError"]
    recordings = {m["partition"]: {e["label"]: e.get("intValue") for e in m["metadataEntries"]}
                  ["recordings"] for m in raw["assetMaterializations"]}
    assert recordings == {"2025-07-18|dev-1": 38, EMPTY: 0, "2025-07-20|dev-1": 38}

    # Each check, per partition: the statuses the checks list and the Lineage counts read
    # agree with each partition's latest evaluation, and the empty day's finding is a WARN.
    expected = {partition: "SUCCEEDED" for partition in BACKFILL}
    for asset, check in CHECKS:
        statuses = check_partition_statuses(dagster, asset)[check]
        executions = latest_check(dagster, asset, check)
        latest = {}
        for e in executions:  # newest first
            latest.setdefault(e["partition"], e)
        assert {p: latest[p]["status"] for p in BACKFILL} == statuses, (check, statuses)
        assert all(latest[p]["runId"] == final["runs"][0]["runId"] for p in BACKFILL)
        if check == "day_has_recordings":
            assert statuses == {**expected, EMPTY: "FAILED"}
            assert latest[EMPTY]["evaluation"]["severity"] == "WARN"
            assert "no recordings of dev-1 on 2025-07-19" in latest[EMPTY]["evaluation"][
                "description"]
        else:
            assert statuses == expected, (check, statuses)

    # People's words stay in the tables: none of the day's transcripts is in the webserver's
    # or the daemon's output (their log, with every run's launch and step events).
    words = {t.strip()[:40] for t in dagster.results.device_rows("vibe_whisper", "dev-1")
             .transcription if t and len(t.strip()) >= 6}
    words |= {line for prompt in dagster.results.device_rows("vibe_whisper_prompt", "dev-1")
              .prompt for line in prompt.splitlines() if line.startswith("[")}
    output = (dagster.home.parent / "dagster.log").read_text(errors="ignore")
    assert len(words) > 40 and not [w for w in words if w in output]

    # A day of corrupt files: the run fails, its check fails, the failure is recorded.
    for slot in ("09-00", "09-30", "10-00"):
        dagster.store.write(f"files/dev-3/2025-07-20/{slot}/audio.wav", b"RIFF\x00garbage")
    add_device(dagster, "dev-3")
    run_id = launch_device_day(dagster, "dev-3", "2025-07-20")

    status = wait_for(lambda: (s := run_status(dagster, run_id))["status"] in
                      ("FAILURE", "SUCCESS") and s, 300, "corrupt-day run did not finish")
    assert status["status"] == "FAILURE"
    check = [e for e in latest_check(dagster, "raw_audio", "failed_slots_below_threshold")
             if e["runId"] == run_id]
    assert check and check[0]["status"] == "FAILED"
    assert check[0]["evaluation"]["severity"] == "ERROR"
    failures = wait_for(lambda: (f := dagster.results.run_failures())[
        f.run_id == run_id].to_dict("records"), 120, "run failure was not recorded")
    assert failures[0]["partition"] == "2025-07-20|dev-3"

    runs_for_a_month_of_three_devices(dagster)


def test_the_lineage_page_in_a_browser(dagster):
    """Its own test: without Chromium only this is skipped, not the scenarios above."""
    lineage_page_shows_all_assets(dagster)


def runs_for_a_month_of_three_devices(dagster: Dagster) -> None:
    """A backfill of 30 days x 3 devices launches a bounded number of runs (10 per run)."""
    devices = ["month-a", "month-b", "month-c"]
    for device in devices:
        add_device(dagster, device)
    partitions = [f"2025-06-{d:02d}|{device}" for device in devices for d in range(1, 31)]
    backfill_id = launch_backfill(dagster, partitions)

    def all_requested():
        status = backfill_status(dagster, backfill_id)
        return len(status["runs"]) >= 9 and status

    status = wait_for(all_requested, 300, "the 90-partition backfill did not request its runs")
    time.sleep(5)  # nothing more arrives
    runs = backfill_status(dagster, backfill_id)["runs"]
    print(f"30 x 3 backfill: {status['numPartitions']} partitions in {len(runs)} runs")
    dagster.query("""mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) {
                       __typename } }""", {"id": backfill_id})
    assert status["numPartitions"] == 90 and len(runs) == 9


@contextlib.contextmanager
def headless_chromium():
    """Debian's Chromium through Selenium, headless, with a fresh profile; skips (saying so)
    where Chromium is not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Chromium/chromedriver not installed (apt-get install chromium "
                    "chromium-driver): browser part skipped")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def lineage_page_shows_all_assets(dagster: Dagster) -> None:
    with headless_chromium() as browser:
        browser.get(f"{dagster.url}/locations/{LOCATION}/asset-groups/watchme")
        wait_for(lambda: all(a in browser.page_source for a in ASSETS), 90,
                 "lineage page did not show all assets")
        time.sleep(2)  # let the graph finish laying out before the picture
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "lineage.png"))
        text = browser.find_element("tag name", "body").text
        assert all(a in text for a in ASSETS), text[:2000]


def rss_of_run_processes() -> list[float]:
    """RSS (MB) of every run worker: the code server starts each run in a spawned process."""
    sizes = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"execute_run" not in cmdline and b"spawn_main" not in cmdline:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sizes


def test_device_days_through_the_run_queue(dagster):
    """Load: device-days queued at once (6 in `make test`, 30 in `make reliability`). The
    queue runs at most 2 at a time (dagster.yaml), no run is starved, and no run process grows
    past the model budget."""
    count = int(os.environ.get("WATCHME_LOAD_DEVICE_DAYS", "6"))
    devices = [f"load-{i:02d}" for i in range((count + 1) // 2)]
    partitions = [(d, date) for d in devices for date in ("2025-07-21", "2025-07-22")][:count]
    for device, date in partitions:
        write_sample_day(dagster.store, device, date, seconds=2, voices=TEST_VOICES)
    for device in devices:
        add_device(dagster, device)
    run_ids = []
    for device, date in partitions:
        run_ids.append(launch_device_day(dagster, device, date))
    peak_running, peak_rss, statuses = 0, 0.0, {}
    deadline = time.time() + 900
    while time.time() < deadline:
        runs = dagster.query("""query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
                                  ... on Runs { results { runId status } } } }""",
                             {"ids": run_ids})["runsOrError"]["results"]
        statuses = {r["runId"]: r["status"] for r in runs}
        running = sum(1 for s in statuses.values() if s in ("STARTING", "STARTED"))
        peak_running = max(peak_running, running)
        peak_rss = max([peak_rss, *rss_of_run_processes()])
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()):
            break
        time.sleep(1)
    done = sum(1 for s in statuses.values() if s == "SUCCESS")
    print(f"load: {len(run_ids)} device-days, {done} succeeded, at most {peak_running} running "
          f"at once, peak run-process RSS {peak_rss:.0f} MB")
    assert done == len(run_ids)  # nobody starved
    assert 1 <= peak_running <= 2  # the queue's max_concurrent_runs
    assert 0 < peak_rss < 2000  # WATCHME_MEMORY_MB's default: the process keeps under it
    for device, date in partitions:
        files = dagster.results.read("audio_files", device, date)
        assert len(files) == 38 and (files.transcriptions_status == "failed").sum() == 1
