"""Group mode (WATCHME_DEVICE_GROUPS): partitions are date x N stable groups of devices, a
(date, group) run processes the group's devices (those its run config names, or all that
recorded), and the sensors request one run per group and date."""

import collections
import datetime as dt

import dagster as dg
import pytest
from conftest import DATE, SHARED_PROCESS_MEMORY_MB
from test_upload_queue import keys_of, notification, post

from watchme_pipeline.assets import build_assets
from watchme_pipeline.checks import build_checks
from watchme_pipeline.partitions import (
    DeviceDay,
    GroupDay,
    build_partitions,
    device_group,
    device_group_count,
    parse_partition_key,
    partition_key_of,
)
from watchme_pipeline.resources import LocalMoodScorer, ModelRegistry
from watchme_pipeline.sensors.run_requests import DayRun, partition_runs
from watchme_pipeline.sensors.upload_queue import build_upload_queue_sensor
from watchme_pipeline.settings import PipelineSettings, launch_settings
from watchme_pipeline.slots import InvalidIdentifier
from watchme_pipeline.stage import Makers
from watchme_pipeline.stages.mood_chart import STAGE as MOOD_CHART

GROUPS = 4
# With 4 groups: dev-0 and dev-3 are in g3, dev-1 in g2 (the hash is stable: these never move).
SAME, OTHER = ["dev-0", "dev-3"], "dev-1"
GROUPED = build_partitions("Asia/Tokyo", "2025-01-01", GROUPS)


def test_groups_are_stable_even_and_keep_a_fleet_inside_dagsters_partition_limit():
    assert [device_group(d, GROUPS) for d in [*SAME, OTHER]] == ["g3", "g3", "g2"]
    assert device_group("dev-7", 50) == "g30"
    fleet = collections.Counter(device_group(f"device-{i:05d}", 50) for i in range(10_000))
    assert len(fleet) == 50 and 150 <= min(fleet.values()) <= max(fleet.values()) <= 250
    # 10,000 devices, 5 years of dates: 50 groups stay under Dagster's 100,000 per asset,
    # whatever the number of devices; per-device partitions would be 18 million.
    five_years = build_partitions(
        "Asia/Tokyo", (dt.date.today() - dt.timedelta(days=5 * 365)).isoformat(), 50)
    assert 1826 * 50 <= five_years.get_num_partitions() <= 1828 * 50 < 100_000
    assert device_group_count(five_years) == 50
    assert device_group_count(build_partitions("Asia/Tokyo", "2025-01-01")) == 0
    with pytest.raises(ValueError, match="1..1000"):
        build_partitions("Asia/Tokyo", "2025-01-01", 5000)


def test_partition_keys_say_their_mode():
    assert parse_partition_key("2025-07-18|g3", GROUPS) == GroupDay("g3", "2025-07-18")
    assert parse_partition_key(dg.MultiPartitionKey({"date": "2025-07-18", "group": "g1"}),
                               GROUPS) == GroupDay("g1", "2025-07-18")
    assert parse_partition_key("2025-07-18|dev-1") == DeviceDay("dev-1", "2025-07-18")
    with pytest.raises(InvalidIdentifier, match=r"expected a group g0..g3 \(WATCHME_DEVICE_"):
        parse_partition_key("2025-07-18|dev-1", GROUPS)
    assert str(partition_key_of(DeviceDay("dev-0", DATE), GROUPS)) == f"{DATE}|g3"
    assert str(partition_key_of(DeviceDay("dev-0", DATE), 0)) == f"{DATE}|dev-0"


def test_the_sensors_request_one_run_per_group_and_date_naming_its_devices():
    days = [DayRun(DeviceDay(d, DATE), [f"files/{d}/{DATE}/09-00/audio.wav"], f"k-{d}")
            for d in [*SAME, OTHER]]
    runs = sorted(partition_runs(days, GROUPS), key=lambda r: str(r.partition_key))
    assert [str(r.partition_key) for r in runs] == [f"{DATE}|g2", f"{DATE}|g3"]
    request = runs[1].request()
    assert request.run_config == {"resources": {"settings": {"config": {"devices": SAME}}}}
    assert request.tags == {"watchme/new_files": "2", "watchme/devices": "2"}
    # The same new recordings make the same run key (a tick that runs twice requests once).
    assert partition_runs(list(reversed(days)), GROUPS)[0].run_key in {r.run_key for r in runs}
    [alone] = partition_runs(days[:1], 0)  # per-device partitions: as before
    assert str(alone.partition_key) == f"{DATE}|dev-0" and alone.request().run_config == {}


def test_queue_mode_batches_a_groups_new_uploads_into_one_run(queue, tmp_path, real_instance):
    from watchme_pipeline.resources import SqlResultStore

    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    sensor = build_upload_queue_sensor(GROUPED, "device_day_job", run_delay_s=0)
    post(queue, [notification(k) for d in [*SAME, OTHER]
                 for k in keys_of(d, DATE, ["09-00", "09-30"])])
    with dg.build_sensor_context(instance=real_instance, resources={
            "upload_queue": queue, "result_store": store}) as context:
        result = sensor(context)
    by_key = {r.partition_key: r for r in result.run_requests}
    assert set(by_key) == {f"{DATE}|g2", f"{DATE}|g3"}
    assert by_key[f"{DATE}|g3"].run_config["resources"]["settings"]["config"]["devices"] == SAME
    assert by_key[f"{DATE}|g3"].tags["watchme/new_files"] == "4"
    # Every upload is requested under its group's run key; the devices are still registered.
    assert store.pending_uploads(limit=10).empty
    [added] = result.dynamic_partitions_requests
    assert sorted(added.partition_keys) == sorted([*SAME, OTHER])


@pytest.mark.slow
def test_a_group_run_processes_its_devices_and_a_launchpad_run_one_device(
        tiny_models, audio_store, result_store, sample_bytes, instance):
    assets = build_assets(GROUPED, Makers(ModelRegistry(profile="tiny",
                                                        cache_dir=str(tiny_models)),
                                          PipelineSettings(), LocalMoodScorer().name()))
    resources = {
        "audio_store": audio_store, "result_store": result_store,
        "model_registry": ModelRegistry(profile="tiny", cache_dir=str(tiny_models)),
        "mood_scorer": LocalMoodScorer(),
        "settings": launch_settings(PipelineSettings(memory_mb=SHARED_PROCESS_MEMORY_MB)),
    }
    chosen = sorted(sample_bytes)[:3]  # three slots a device is enough
    for device in [*SAME, OTHER]:
        for key in chosen:
            audio_store.write(key.replace("/dev-1/", f"/{device}/"), sample_bytes[key])
    graph = [*assets, *build_checks(GROUPED)]

    # Materialize g3 from the UI (no devices named): every device of g3 that recorded.
    result = dg.materialize(graph, partition_key=f"{DATE}|g3", resources=resources,
                            instance=instance)
    assert result.success
    for asset in ("raw_audio", "transcripts", "mood_chart"):
        [event] = result.asset_materializations_for_node(asset)
        assert event.partition == f"{DATE}|g3"
        assert event.metadata["devices"].value == 2
        assert event.metadata["device_ids"].value == SAME
    [raw] = result.asset_materializations_for_node("raw_audio")
    assert raw.metadata["recordings"].value == 6 and raw.metadata["slots_found"].value == 6
    [chart] = result.asset_materializations_for_node("mood_chart")
    assert "chart" not in chart.metadata  # per-device images stay per device, in the store
    for device in SAME:
        assert len(result_store.recordings(device, DATE)) == 3
        summary = result_store.stage_rows(MOOD_CHART, device, DATE)
        assert len(summary) == 1 and len(summary.iloc[0].vibe_scores) == 48
        assert sum(s is not None for s in summary.iloc[0].vibe_scores) == 3
    assert result_store.recordings(OTHER, DATE).empty  # another group: untouched
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["scores_valid"].passed and checks["failed_slots_below_threshold"].passed
    assert set(checks["failed_slots_below_threshold"].metadata["days"].value) == {
        f"{DATE}|g3 {d}" for d in SAME}

    # Redo one device-day from the Launchpad: its group's partition, the device named.
    before = {d: result_store.stage_rows(MOOD_CHART, d, DATE).iloc[0].processed_at
              for d in SAME}
    redo = dg.materialize(graph, partition_key=f"{DATE}|g3", resources=resources,
                          instance=instance, run_config={"resources": {"settings": {"config": {
                              "devices": ["dev-3"], "recompute": True}}}})
    assert redo.success
    [event] = redo.asset_materializations_for_node("transcripts")
    assert event.metadata["device_ids"].value == ["dev-3"]
    assert event.metadata["slots_processed"].value == 3  # recomputed: one device's three
    after = {d: result_store.stage_rows(MOOD_CHART, d, DATE).iloc[0].processed_at
             for d in SAME}
    assert after["dev-0"] == before["dev-0"] and after["dev-3"] > before["dev-3"]

    # A device named for the wrong group fails at once, saying where it belongs.
    wrong = dg.materialize(assets[:1], partition_key=f"{DATE}|g3", resources=resources,
                           instance=instance, raise_on_error=False, run_config={
                               "resources": {"settings": {"config": {"devices": [OTHER]}}}})
    assert not wrong.success
    [failure] = [e for e in wrong.all_events if e.is_step_failure]
    assert "dev-1 is in group g2" in failure.event_specific_data.error.message


def test_the_cli_says_which_partition_redoes_a_device_day(monkeypatch, capsys):
    from watchme_pipeline.__main__ import main

    monkeypatch.setenv("WATCHME_DEVICE_GROUPS", "50")
    main(["partition", "dev-7", "2026-11-30"])
    out = capsys.readouterr().out
    assert out.startswith("partition: 2026-11-30|g30\n") and "devices: [dev-7]" in out
    monkeypatch.setenv("WATCHME_DEVICE_GROUPS", "0")
    main(["partition", "dev-7", "2026-11-30"])
    assert capsys.readouterr().out == "partition: 2026-11-30|dev-7\n"
    monkeypatch.setenv("WATCHME_DEVICE_GROUPS", "5000")
    with pytest.raises(ValueError, match="WATCHME_DEVICE_GROUPS=5000: at most 1000"):
        main(["partition", "dev-7", "2026-11-30"])


def test_the_deployment_chooses_group_partitions(tmp_path):
    from watchme_pipeline.definitions import build_definitions

    env = {"WATCHME_DATA_DIR": str(tmp_path), "WATCHME_MODEL_PROFILE": "tiny",
           "WATCHME_DEVICE_GROUPS": "10"}
    defs = build_definitions(env)
    job = defs.resolve_job_def("device_day_job")
    assert job.partitions_def.partition_dimension_names == ["date", "group"]
    groups = job.partitions_def.get_partitions_def_for_dimension("group").get_partition_keys()
    assert groups == [f"g{i}" for i in range(10)]
    # Every asset and check of the graph is partitioned alike (one run covers them all), and
    # a backfill runs one group-day a run (it is already a group's devices).
    assert {a.partitions_def for a in defs.assets} == {job.partitions_def}
    assert {a.backfill_policy.max_partitions_per_run for a in defs.assets} == {1}
    assert build_definitions({**env, "WATCHME_DEVICE_GROUPS": ""}).resolve_job_def(
        "device_day_job").partitions_def.partition_dimension_names == ["date", "device"]


def test_a_group_partitions_metadata_sums_its_devices_figures():
    from watchme_pipeline.assets.common import merge_figures

    merged = merge_figures([
        {"recordings": 3, "audio_minutes": 1.25, "average_score": 10.0, "scorer": "local",
         "peak_rss_mb": 900,
         "maker_is_code_version": True, "failed_slots": dg.MetadataValue.json({"09-00": "x"}),
         "insights": "a", "chart": dg.MetadataValue.md("![](data:...)")},
        {"recordings": 5, "audio_minutes": 2.5, "average_score": None, "scorer": "local",
         "peak_rss_mb": 1100,
         "maker_is_code_version": False, "insights": "b"},
        {"recordings": 0, "audio_minutes": 0.0, "average_score": 20.0, "scorer": "local",
         "peak_rss_mb": 1000,
         "maker_is_code_version": True},
    ])
    # Counts summed, averages averaged over the devices that have one, peaks the largest,
    # flags all-true, equal strings kept; per-device detail (JSON, images, differing text)
    # left out.
    assert merged == {"recordings": 8, "audio_minutes": 3.75, "average_score": 15.0,
                      "peak_rss_mb": 1100,
                      "scorer": "local", "maker_is_code_version": False}
    assert merge_figures([]) == {}


def test_queue_mode_without_the_sql_store_is_refused_at_load():
    from watchme_pipeline.settings import load_deployment

    with pytest.raises(ValueError, match="WATCHME_UPLOAD_QUEUE needs the SQL result store"):
        load_deployment({"WATCHME_UPLOAD_QUEUE": "https://sqs.example/q",
                         "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "k"})
