"""A person's data: forget a device (SQLite and PostgreSQL, a folder and S3 on moto, killed
and resumed), export it, retention of raw audio, and no speech outside the result tables."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import ALL_ASSETS, ALL_CHECKS, DATE, new_audio_sensor

from watchme_pipeline.privacy.export import export_device, rows_as_json
from watchme_pipeline.privacy.forget import ForgetRefused, forget_device
from watchme_pipeline.privacy.retention import delete_expired_audio
from watchme_pipeline.resources import SqlResultStore
from watchme_pipeline.sample_data import SENTENCES
from watchme_pipeline.store.persons import device_tables
from watchme_pipeline.store.rows import date_column

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ["dev-a", "dev-b", "dev-c"]
DATES = [DATE, "2025-07-19", "2025-07-20"]
SLOTS = 3  # recordings per day: enough for every table, quick with the tiny models
ASSET_KEYS = [a.key for a in ALL_ASSETS]


def seed(resources, instance, sample_bytes, devices=DEVICES, dates=DATES, broken=None):
    """Each device-day through the whole graph (one batched run per device); ``broken``: a
    (device, date) whose first slot is a file that does not decode."""
    store = resources["audio_store"]
    keys = sorted(sample_bytes)[:SLOTS]
    for device in devices:
        for date in dates:
            for i, key in enumerate(keys):
                data = b"RIFF\x00garbage" if (device, date) == broken and i == 0 else \
                    sample_bytes[key]
                store.write(key.replace(f"/dev-1/{DATE}/", f"/{device}/{date}/"), data)
    instance.add_dynamic_partitions("devices", list(devices))
    job = dg.Definitions(assets=[*ALL_ASSETS, *ALL_CHECKS], resources=resources,
                         jobs=[dg.define_asset_job("device_day_job")]
                         ).resolve_job_def("device_day_job")
    for device in devices:
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": f"{dates[0]}|{device}",
            "dagster/asset_partition_range_end": f"{dates[-1]}|{device}"})
        assert result.success


def row_counts(result_store, device: str) -> dict[str, int]:
    return {t.name: len(result_store.device_rows(t.name, device)) for t in device_tables()}


def object_counts(audio_store, device: str) -> dict[str, int]:
    return {p: sum(1 for _ in audio_store.list_objects(f"{p}/{device}/"))
            for p in ("files", "charts")}


@pytest.fixture(params=["sqlite+folder", "postgresql+s3"])
def stores(request, resources, tmp_path):
    """The graph's resources on SQLite and a folder, or on PostgreSQL and S3 (moto)."""
    if request.param == "sqlite+folder":
        return resources
    cluster = request.getfixturevalue("postgres")
    url = cluster.create_database(f"forget_{os.getpid()}_{int(time.time() * 1000) % 10**8}")
    return {**resources, "result_store": SqlResultStore(database_url=url),
            "audio_store": request.getfixturevalue("s3_store")}


def test_forget_a_device_deletes_it_everywhere_and_nothing_else(stores, instance, sample_bytes):
    seed(stores, instance, sample_bytes)
    results, audio = stores["result_store"], stores["audio_store"]
    before = {d: (row_counts(results, d), object_counts(audio, d)) for d in DEVICES}
    assert before["dev-b"][0]["vibe_whisper"] == SLOTS * 3
    assert before["dev-b"][1] == {"files": SLOTS * 3, "charts": 3}
    assert any(str(k).endswith("|dev-b") for k in instance.get_materialized_partitions(
        dg.AssetKey("raw_audio")))

    with pytest.raises(ForgetRefused, match="must repeat the device id"):
        forget_device("dev-b", "dev-c", audio_store=audio, result_store=results,
                      instance=instance)
    assert row_counts(results, "dev-b") == before["dev-b"][0]  # nothing deleted

    # One more run of one partition, as the sensor and the UI launch them (tagged by device).
    single = dg.materialize(ALL_ASSETS, partition_key=f"{DATES[0]}|dev-b", resources=stores,
                            instance=instance)
    report = forget_device("dev-b", "dev-b", audio_store=audio, result_store=results,
                           instance=instance, asset_keys=ASSET_KEYS)
    assert instance.get_run_by_id(single.run_id) is None
    assert report.counts["table vibe_whisper"] == SLOTS * 3
    assert report.counts["store files/dev-b/"] == SLOTS * 3
    assert report.counts["dagster partition key"] == 1 and report.counts["dagster runs"] == 2
    assert not report.kept  # nothing of it left in Dagster
    assert set(row_counts(results, "dev-b").values()) == {0}
    assert object_counts(audio, "dev-b") == {"files": 0, "charts": 0}
    assert "dev-b" not in instance.get_dynamic_partitions("devices")
    for key in ASSET_KEYS:
        assert not [k for k in instance.get_materialized_partitions(key)
                    if str(k).endswith("|dev-b")], key
    assert not instance.get_run_records(filters=dg.RunsFilter(
        tags={"dagster/asset_partition_range_start": f"{DATES[0]}|dev-b"}))
    for device in ("dev-a", "dev-c"):  # the others: untouched
        assert (row_counts(results, device), object_counts(audio, device)) == before[device]
    [audit] = results.data_requests("dev-b").to_dict("records")
    assert audit["kind"] == "forget" and audit["finished_at"] is not None
    assert audit["counts"]["table audio_files"] == SLOTS * 3
    assert all(isinstance(n, int) for n in audit["counts"].values())  # counts, no content

    # A new upload of the forgotten device is refused (and counted) until re-admitted.
    audio.write("files/dev-b/2025-07-21/09-00/audio.wav", sample_bytes[sorted(sample_bytes)[0]])
    audio.write("files/dev-a/2025-07-21/09-00/audio.wav", sample_bytes[sorted(sample_bytes)[0]])
    sensor_resources = {"audio_store": audio, "result_store": results}
    with dg.build_sensor_context(instance=instance, resources=sensor_resources) as context:
        result = new_audio_sensor(context)
    requested = {r.partition_key for r in result.run_requests}
    assert "2025-07-21|dev-a" in requested and not any("dev-b" in k for k in requested)
    assert json.loads(result.cursor)["refused"] == {"dev-b": 1}
    results.readmit("dev-b")
    with dg.build_sensor_context(instance=instance, resources=sensor_resources) as context:
        result = new_audio_sensor(context)
    assert "2025-07-21|dev-b" in {r.partition_key for r in result.run_requests}
    assert "refused" not in json.loads(result.cursor)


def test_a_forget_killed_midway_is_finished_by_running_it_again(resources, tmp_path,
                                                                 sample_bytes):
    """The CLI forget, SIGKILLed after its first deletions, then run again."""
    audio = resources["audio_store"]
    data = sample_bytes[sorted(sample_bytes)[0]]
    for day in range(1, 31):  # enough objects that the kill lands mid-deletion
        for slot in range(48):
            audio.write(f"files/dev-k/2025-06-{day:02d}/{slot // 2:02d}-{slot % 2 * 30:02d}/"
                        f"audio.wav", data[:2000])
    audio.write("files/dev-o/2025-06-01/09-00/audio.wav", data[:2000])
    env = {**os.environ, "WATCHME_AUDIO_STORE": audio.root,
           "WATCHME_DATABASE_URL": resources["result_store"].database_url}
    env.pop("DAGSTER_HOME", None)
    command = [sys.executable, "-m", "watchme_pipeline", "forget", "dev-k", "--confirm", "dev-k"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    total = 30 * 48
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if 0 < sum(1 for _ in audio.list_objects("files/dev-k/")) < total:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = sum(1 for _ in audio.list_objects("files/dev-k/"))
    assert 0 < left < total, f"the kill did not land mid-deletion ({left} left)"
    requests = resources["result_store"].data_requests("dev-k")
    assert len(requests) == 1 and requests.finished_at.isna().all()

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    assert sum(1 for _ in audio.list_objects("files/dev-k/")) == 0
    assert sum(1 for _ in audio.list_objects("files/dev-o/")) == 1
    [audit] = resources["result_store"].data_requests("dev-k").to_dict("records")
    assert audit["finished_at"] is not None
    assert audit["counts"]["store files/dev-k/"] == total  # both runs' deletions, once each


def test_export_holds_every_row_of_the_days_exactly_once(resources, instance, sample_bytes,
                                                         tmp_path):
    seed(resources, instance, sample_bytes, devices=["dev-a"])
    results = resources["result_store"]
    resources["audio_store"].write("files/dev-a/enrollment/voice.wav", b"RIFF-the-voice")
    report = export_device("dev-a", tmp_path / "out", result_store=results,
                           audio_store=resources["audio_store"], since=DATES[0],
                           until=DATES[1], audio=True)
    root = tmp_path / "out" / "dev-a"
    assert sorted(p.name for p in root.iterdir()) == ["2025-07-18", "2025-07-19", "README.md",
                                                      "enrollment"]
    assert report.days == 2 and report.charts == 2 and report.audio_files == 2 * SLOTS
    assert (root / "enrollment" / "voice.wav").read_bytes() == b"RIFF-the-voice"
    assert report.enrollment_files == 1
    for table in device_tables():
        expected = [row for row in rows_as_json(results.device_rows(table.name, "dev-a"))
                    if row[date_column(table)] in DATES[:2]]
        exported = [row for day in DATES[:2] if (root / day / f"{table.name}.json").exists()
                    for row in json.loads((root / day / f"{table.name}.json").read_text())]
        key = [c.name for c in table.primary_key.columns]
        assert sorted(json.dumps(r, sort_keys=True) for r in exported) == sorted(
            json.dumps(r, sort_keys=True) for r in expected), table.name
        assert len({tuple(r[k] for k in key) for r in exported}) == len(exported)
    assert (root / DATES[0] / "mood_chart.png").read_bytes()[:4] == b"\x89PNG"
    assert "vibe_whisper.json" in (root / "README.md").read_text()


def test_retention_deletes_completed_audio_only_and_results_stay(resources, instance,
                                                                 sample_bytes):
    seed(resources, instance, sample_bytes, devices=["dev-a"], broken=("dev-a", DATES[0]))
    results, audio = resources["result_store"], resources["audio_store"]
    tables = [t.name for t in device_tables() if t.name not in ("audio_files", "uploads")]
    before = {t: results.device_rows(t, "dev-a") for t in tables}
    today = dt.date.fromisoformat(DATES[2]) + dt.timedelta(days=1)
    counts = delete_expired_audio(results, audio, today, days=1)
    # Days before today - 1 (the first two): every completed recording's audio is gone; the
    # broken file (failed in every stage) keeps its audio; the last day keeps all of it.
    assert counts["recordings"] == 2 * SLOTS - 1
    left = sorted(o.key.split("/")[2] for o in audio.list_objects("files/dev-a/"))
    assert left == [DATES[0]] + [DATES[2]] * SLOTS
    broken = results.recordings("dev-a", DATES[0]).set_index("time_block")
    assert broken.audio_deleted_at.isna().sum() == 1 and not broken.decodes.all()
    for t in tables:
        assert len(results.device_rows(t, "dev-a")) == len(before[t]), t

    # The first day again: it succeeds, and its results are kept, not failed or emptied.
    result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], partition_key=f"{DATES[0]}|dev-a",
                            resources=resources, instance=instance)
    assert result.success
    [raw] = result.asset_materializations_for_node("raw_audio")
    assert raw.metadata["recordings_audio_deleted"].value == SLOTS - 1
    timestamps = {"generated_at", "processed_at", "updated_at"}
    for t in tables:
        now = results.device_rows(t, "dev-a").drop(columns=list(timestamps), errors="ignore")
        was = before[t].drop(columns=list(timestamps), errors="ignore")
        assert now.to_json() == was.to_json(), t
    files = results.recordings("dev-a", DATES[0])
    assert (files.transcriptions_status == "completed").sum() == SLOTS - 1


def test_no_speech_or_forgotten_device_outside_the_result_tables(resources, tmp_path,
                                                                 sample_bytes):
    """The whole graph into a real instance (compute logs on disk), then a forget: nothing of
    the day's words is in Dagster's storage, and nothing names the device after the forget."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        seed(resources, instance, sample_bytes, devices=["dev-p", "dev-q"], dates=DATES[:1])
        results = resources["result_store"]
        words = [t for t in results.device_rows("vibe_whisper", "dev-p").transcription
                 if t and len(t.strip()) >= 6]
        prompt = results.device_rows("vibe_whisper_prompt", "dev-p").prompt.iloc[0]
        needles = ({w.strip()[:40] for w in words} | {line for line in prompt.splitlines()
                                                      if line.startswith("[")}
                   | {s[:20] for s in SENTENCES})
        assert needles
        forget_device("dev-p", "dev-p", audio_store=resources["audio_store"],
                      result_store=results, instance=instance, asset_keys=ASSET_KEYS)
        # What Dagster keeps: runs (tags, config), every event of every run, the assets'
        # and checks' records, the partition keys; and the compute logs on disk.
        kept = [json.dumps([r.tags, r.run_config], default=str) for r in instance.get_runs()]
        kept += [str(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id)]
        for key in ASSET_KEYS:
            kept += [str(r) for r in instance.fetch_materializations(key, limit=1000).records]
        for check in ALL_CHECKS:
            for check_key in check.check_keys:
                kept += [str(r) for r in instance.event_log_storage.
                         get_asset_check_execution_history(check_key, limit=1000)]
        kept.append(json.dumps(instance.get_dynamic_partitions("devices")))
    kept += [p.read_text(errors="ignore") for p in (home / "storage").rglob("*")
             if p.is_file()]
    assert len(kept) > 50  # the runs and their events were read
    found = [(n, text[:80]) for text in kept for n in [*needles, "dev-p"] if n in text]
    assert not found, found[:5]
    assert any("dev-q" in text for text in kept)  # the other device's records are there


def test_the_forget_device_job_does_the_same_and_refuses_a_mismatch(resources, instance,
                                                                    sample_bytes):
    """The job the UI launches: config device_id and confirm; a mismatch deletes nothing."""
    from watchme_pipeline.privacy.jobs import build_forget_job

    seed(resources, instance, sample_bytes, devices=["dev-a", "dev-b"], dates=DATES[:1])
    job = build_forget_job(ASSET_KEYS, device_groups=0)
    results = resources["result_store"]

    def launch(confirm: str) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            instance=instance, raise_on_error=False,
            resources={k: resources[k] for k in ("result_store", "audio_store")},
            run_config={"ops": {"forget": {"config": {"device_id": "dev-b",
                                                      "confirm": confirm}}}})

    refused = launch("dev-a")
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.is_step_failure]
    assert "must repeat the device id (got 'dev-a')" in failure.event_specific_data.error.message
    assert row_counts(results, "dev-b")["vibe_whisper"] == SLOTS
    done = launch("dev-b")
    assert done.success
    assert set(row_counts(results, "dev-b").values()) == {0}
    assert row_counts(results, "dev-a")["vibe_whisper"] == SLOTS
    assert "dev-b" not in instance.get_dynamic_partitions("devices")
    # The earlier (refused) forget run named the device in its config: it is gone too.
    assert instance.get_run_by_id(refused.run_id) is None
    assert results.forgotten(["dev-a", "dev-b"]) == {"dev-b"}


def test_in_group_mode_runs_of_the_device_alone_go_and_shared_ones_are_listed(instance):
    from watchme_pipeline.privacy.forget import forget_in_dagster
    from watchme_pipeline.settings import PipelineSettings, launch_settings

    @dg.op
    def step(settings: PipelineSettings) -> None:
        pass

    @dg.job(resource_defs={"settings": launch_settings(PipelineSettings())})
    def group_run():
        step()

    def run_for(devices: list[str]) -> str:
        return group_run.execute_in_process(instance=instance, run_config={
            "resources": {"settings": {"config": {"devices": devices}}}}).run_id

    alone, shared, other = run_for(["dev-b"]), run_for(["dev-b", "dev-c"]), run_for(["dev-c"])
    counts, kept = forget_in_dagster(instance, "dev-b", [], device_groups=8)
    assert counts == {"dagster runs": 1}
    assert instance.get_run_by_id(alone) is None
    assert instance.get_run_by_id(shared) and instance.get_run_by_id(other)
    assert any(shared in line and "among others" in line for line in kept)
