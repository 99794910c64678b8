"""Asset checks, batched backfill runs, retry policies and the run-failure record."""

import datetime as dt
import logging

import dagster as dg
import pytest
from conftest import ALL_ASSETS, ALL_CHECKS, DATE, DEVICE, PARTITIONS, materialize_day

from watchme_pipeline.definitions import defs
from watchme_pipeline.secrets import redact
from watchme_pipeline.sensors import record_failed_runs


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_checks_pass_on_the_sample_day(resources, instance, sample_day):
    result = materialize_day(resources, instance, assets=[*ALL_ASSETS, *ALL_CHECKS])
    assert result.success
    checks = check_results(result)
    assert set(checks) == {"failed_slots_below_threshold", "day_has_recordings",
                           "no_slot_left_pending", "scores_valid"}
    assert all(c.passed for c in checks.values())
    assert {c.partition for c in checks.values()} == {f"{DATE}|{DEVICE}"}
    days = checks["failed_slots_below_threshold"].metadata["days"].value
    assert days[f"{DATE}|{DEVICE}"]["failed"] == 1
    assert "12-30" in days[f"{DATE}|{DEVICE}"]["reasons"]


def test_an_all_corrupt_day_fails_loudly_before_the_models(resources, instance, audio_store):
    for slot in ("09-00", "09-30", "10-00"):
        audio_store.write(f"files/{DEVICE}/{DATE}/{slot}/audio.wav", b"RIFF garbage")
    result = materialize_day(resources, instance, assets=[*ALL_ASSETS, *ALL_CHECKS],
                             raise_on_error=False)
    assert not result.success
    check = check_results(result)["failed_slots_below_threshold"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    # Blocked before any model step ran.
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert ran == {"raw_audio", "raw_audio_failed_slots_below_threshold",
                   "raw_audio_day_has_recordings"}
    files = resources["result_store"].read("audio_files", DEVICE, DATE)
    assert list(files.transcriptions_status) == ["failed"] * 3


def test_a_batched_backfill_run_loads_each_model_once_for_all_its_days(resources, instance,
                                                                        sample_day,
                                                                        audio_store):
    for key, data in sample_day.items():  # the same recordings on the next day too
        audio_store.write(key.replace(DATE, "2025-07-19"), data)
    instance.add_dynamic_partitions("devices", [DEVICE])
    job = dg.Definitions(assets=ALL_ASSETS, jobs=[dg.define_asset_job("device_day_job")],
                         resources=resources).resolve_job_def("device_day_job")
    result = job.execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": f"{DATE}|{DEVICE}",
        "dagster/asset_partition_range_end": f"2025-07-19|{DEVICE}"})
    assert result.success
    for stage in ("transcripts", "event_scores", "emotion_scores"):  # loaded for the first day
        loaded = {m.partition: m.metadata["model_loaded"].value
                  for m in result.asset_materializations_for_node(stage)}
        assert sorted(loaded.values()) == [False, True], stage
    store = resources["result_store"]
    for date in (DATE, "2025-07-19"):
        assert len(store.read("vibe_whisper", DEVICE, date)) == 37
        assert len(store.read("vibe_whisper_summary", DEVICE, date)) == 1
    mats = result.asset_materializations_for_node("transcripts")
    assert sorted(m.partition for m in mats) == [f"{DATE}|{DEVICE}", f"2025-07-19|{DEVICE}"]
    assert all(m.metadata["slots_processed"].value == 37 for m in mats)


def check_statuses(instance: dg.DagsterInstance, asset: str, check: str) -> dict[str, set]:
    """What the UI reads: the check's per-partition statuses from Dagster's storage."""
    from dagster._core.loader import LoadingContextForTest
    from dagster._core.storage.asset_check_state import AssetCheckState

    with dg.partition_loading_context(dynamic_partitions_store=instance):
        state = AssetCheckState.blocking_get(LoadingContextForTest(instance), (
            dg.AssetCheckKey(dg.AssetKey(asset), check), PARTITIONS))
    return {status.value: set(subset.subset_value.get_partition_keys())
            for status, subset in state.subsets.items()
            if not subset.subset_value.is_empty}


def test_an_empty_day_in_a_backfill_is_a_finding_not_a_green_day(resources, instance,
                                                                sample_bytes, audio_store):
    """Three dates of one device in one backfill run; the middle one has no recordings."""
    dates = [DATE, "2025-07-19", "2025-07-20"]
    for key in sorted(sample_bytes)[:3]:  # three slots on the first and last dates
        for date in (dates[0], dates[2]):
            audio_store.write(key.replace(DATE, date), sample_bytes[key])
    instance.add_dynamic_partitions("devices", [DEVICE])
    job = dg.Definitions(assets=[*ALL_ASSETS, *ALL_CHECKS], resources=resources,
                         jobs=[dg.define_asset_job("device_day_job")]
                         ).resolve_job_def("device_day_job")
    result = job.execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": f"{dates[0]}|{DEVICE}",
        "dagster/asset_partition_range_end": f"{dates[2]}|{DEVICE}"})
    assert result.success  # the backfill finishes: every asset of every date materialized
    empty = f"{dates[1]}|{DEVICE}"
    for stage in ("raw_audio", "vibe_prompt", "mood_chart"):
        assert len(result.asset_materializations_for_node(stage)) == 3
    raw = {m.partition: m.metadata for m in result.asset_materializations_for_node("raw_audio")}
    assert raw[empty]["recordings"].value == 0
    assert [raw[f"{d}|{DEVICE}"]["recordings"].value for d in (dates[0], dates[2])] == [3, 3]
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and "no recordings of" in e.user_message]
    assert any(f"no recordings of {DEVICE} on {dates[1]} under files/{DEVICE}/{dates[1]}/ "
               f"in local folder {audio_store.root}" in w for w in warnings), warnings

    evaluations = [e for e in result.get_asset_check_evaluations()
                   if e.check_name == "day_has_recordings"]
    by_partition = {e.partition: e for e in evaluations}
    assert set(by_partition) == {f"{d}|{DEVICE}" for d in dates}
    finding = by_partition.pop(empty)
    assert not finding.passed and finding.severity == dg.AssetCheckSeverity.WARN
    assert f"on {dates[1]}" in finding.description
    assert f"it recorded on {dates[0]}, {dates[2]}" in finding.description
    assert all(e.passed for e in by_partition.values())
    # Every other check: one evaluation per partition, all passed.
    others = [e for e in result.get_asset_check_evaluations()
              if e.check_name != "day_has_recordings"]
    assert len(others) == 9 and all(e.passed for e in others)
    # The statuses the UI shows, per partition, agree with the evaluations.
    assert check_statuses(instance, "raw_audio", "day_has_recordings") == {
        "SUCCEEDED": {f"{dates[0]}|{DEVICE}", f"{dates[2]}|{DEVICE}"}, "FAILED": {empty}}
    assert check_statuses(instance, "mood_chart", "scores_valid") == {
        "SUCCEEDED": {f"{d}|{DEVICE}" for d in dates}}

    # The prompt and the chart say it was an empty day.
    store = resources["result_store"]
    prompt = store.read("vibe_whisper_prompt", DEVICE, dates[1]).iloc[0]
    assert prompt.prompt.startswith("この日の録音はありません。") and prompt.processed_files == 0
    summary = store.read("vibe_whisper_summary", DEVICE, dates[1]).iloc[0]
    assert summary.vibe_scores == [None] * 48 and summary.average_score is None
    assert summary.insights == "この日の録音はありません。"
    assert summary.scorer == "no recordings"
    chart = {m.partition: m.metadata for m in result.asset_materializations_for_node("mood_chart")}
    assert chart[empty]["empty_day"].value is True
    assert chart[f"{dates[0]}|{DEVICE}"]["empty_day"].value is False
    assert chart[f"{dates[0]}|{DEVICE}"]["scorer"].value == "local"


def test_a_limit_set_in_the_launchpad_is_named_as_such(resources, instance, sample_day):
    """The error names where the limit came from: this run's config, not the environment."""
    result = materialize_day(resources, instance, raise_on_error=False, run_config={
        "resources": {"settings": {"config": {"memory_mb": 100}}}})
    assert not result.success
    messages = {e.step_key: e.event_specific_data.error.message
                for e in result.all_events if e.is_step_failure}
    # The model steps that ran were refused; transcripts and emotion_scores wait on speakers.
    assert set(messages) == {"speakers", "event_scores"}
    for message in messages.values():
        assert "its limit of 100 MB (set by this run's config, " \
               "resources.settings.config.memory_mb)" in message
        assert "WATCHME_MEMORY_MB" not in message


def test_policies_on_the_graph():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.backfill_policy.max_partitions_per_run == 10
    job = defs.resolve_job_def("device_day_job")
    policies = {n.name: n.definition.retry_policy for n in job.nodes if n.name in
                {"raw_audio", "mood_chart"}}
    assert all(p.max_retries == 2 and p.backoff == dg.Backoff.EXPONENTIAL
               for p in policies.values())
    prompt = graph.get(dg.AssetKey("vibe_prompt"))

    def windows(condition):
        if type(condition).__name__ == "InLatestTimeWindowCondition":
            yield condition.lookback_timedelta
        for child in condition.children:
            yield from windows(child)

    # Automation looks back a week (late uploads), not at every date of every device.
    assert list(windows(prompt.automation_condition)) == [dt.timedelta(days=7)]


def test_failed_runs_are_recorded_without_secrets(resources, instance, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")

    @dg.op
    def explode():
        raise RuntimeError("LLM refused key sk-secret-value-123 at "
                           "postgresql://u:hunter2@db:5432/x")

    @dg.job(tags={"dagster/partition": f"{DATE}|{DEVICE}"})
    def failing():
        explode()

    result = failing.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = [e for e in instance.all_logs(result.run_id)
               if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"][0]
    context = dg.build_run_status_sensor_context(
        sensor_name="record_failed_runs", dagster_event=failure.dagster_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    record_failed_runs(context, result_store=resources["result_store"])
    rows = resources["result_store"].run_failures()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.run_id, row.partition, row.steps, row.error_class) == (
        result.run_id, f"{DATE}|{DEVICE}", "explode", "RuntimeError")
    assert "LLM refused key ***" in row.message and "u:***@db" in row.message
    assert "sk-secret-value-123" not in row.message and "hunter2" not in row.message


@pytest.mark.parametrize("text, expected", [
    ("key=AKIA1234 and sk-x", "key=*** and sk-x"),
    ("postgresql+psycopg://me:pw@h/db", "postgresql+psycopg://me:***@h/db"),
    ("Authorization: Bearer abcdefghijkl", "Authorization: Bearer ***"),
])
def test_redact(text, expected):
    assert redact(text, {"AWS_ACCESS_KEY_ID": "AKIA1234"}) == expected
