import subprocess
import sys
from pathlib import Path

import dagster as dg

from watchme_pipeline.definitions import defs
from watchme_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_hold_the_six_assets_in_lineage_order():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    # The list of stages is the graph (a stage added by docs/architecture.md's recipe too).
    assert keys == {s.name for s in STAGES} >= {"raw_audio", "transcripts", "event_scores",
                                                "emotion_scores", "vibe_prompt", "mood_chart"}
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["speakers"] == {"raw_audio"}
    assert parents["transcripts"] == parents["emotion_scores"] == {"raw_audio", "speakers"}
    assert parents["vibe_prompt"] == {"raw_audio", "speakers", "transcripts", "event_scores",
                                      "emotion_scores"}
    assert parents["mood_chart"] == {"vibe_prompt"}
    job = defs.resolve_job_def("device_day_job")
    assert job.executor_def.name == "in_process"


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_settings_come_from_the_environment_given_and_can_change_per_run(tmp_path):
    import pytest

    from watchme_pipeline.definitions import build_definitions

    env = {"WATCHME_DATA_DIR": str(tmp_path), "WATCHME_MODEL_PROFILE": "tiny",
           "WATCHME_LANGUAGE": "en", "WATCHME_PROMPT_LANGUAGE": "en",
           "WATCHME_MEMORY_MB": "1200", "WATCHME_TIMEZONE": "Europe/Paris"}
    built = build_definitions(env)  # only this mapping is read
    settings = built.resources["settings"].data  # configurable at launch, these the defaults
    assert (settings["language"], settings["prompt_language"], settings["memory_mb"]) == (
        "en", "en", 1200)
    daily = built.resolve_job_def("device_day_job").partitions_def
    assert daily.get_partitions_def_for_dimension("date").timezone == "Europe/Paris"
    # Launchpad: every run setting is a config field of the `settings` resource.
    fields = built.resolve_job_def("device_day_job").run_config_schema.config_type.fields[
        "resources"].config_type.fields["settings"].config_type.fields["config"].config_type
    assert {"language", "prompt_language", "recompute", "memory_mb", "whisper_batch_size",
            "event_batch_size", "emotion_batch_size"} <= set(fields.fields)
    # Every asset says what makes its results; the model stages name their model.
    versions = {a.key.to_user_string(): a.code_versions_by_key[a.key] for a in built.assets}
    assert all(versions.values()) and len(versions) == len(STAGES)
    assert "tiny-whisper+faster-whisper-int8" in versions["transcripts"]
    assert " tiny-events " in versions["event_scores"]  # PyTorch: no runtime suffix
    assert "language='en'" in versions["transcripts"]
    assert versions["mood_chart"].endswith("|local")
    # The old variable still works, and says it is old.
    with pytest.warns(FutureWarning, match="WATCHME_MODEL_MEMORY_MB is now WATCHME_MEMORY_MB"):
        old = build_definitions({**env, "WATCHME_MEMORY_MB": "",
                                 "WATCHME_MODEL_MEMORY_MB": "900"})
    assert old.resources["settings"].data["memory_mb"] == 900
    with pytest.raises(ValueError, match="WATCHME_QUANTIZE"):
        build_definitions({**env, "WATCHME_QUANTIZE": "emotion"})


def test_a_setting_changed_for_one_run_keeps_the_deployments_others():
    import dagster as dg

    from watchme_pipeline.settings import PipelineSettings, launch_settings

    @dg.asset
    def seen(settings: PipelineSettings) -> tuple:
        return settings.language, settings.memory_mb, settings.recompute, settings.devices

    resources = {"settings": launch_settings(PipelineSettings(language="en", memory_mb=900))}
    plain = dg.materialize([seen], resources=resources)
    assert plain.output_for_node("seen") == ("en", 900, False, [])
    # What a sensor's run request (devices) or the Launchpad (recompute) sets for one run.
    changed = dg.materialize([seen], resources=resources, run_config={
        "resources": {"settings": {"config": {"recompute": True, "devices": ["d-1"]}}}})
    assert changed.output_for_node("seen") == ("en", 900, True, ["d-1"])


def test_the_deployment_decides_the_result_store_once(tmp_path):
    """Which store is active is decided in one place, and the deployment says it: with only
    Supabase configured there is no SQL URL for `migrate` to touch by mistake."""
    from watchme_pipeline.definitions import build_resources
    from watchme_pipeline.resources import SqlResultStore, SupabaseResultStore
    from watchme_pipeline.settings import load_deployment

    base = {"WATCHME_DATA_DIR": str(tmp_path)}
    sqlite = load_deployment(base)
    assert sqlite.result_backend == "sql"
    assert sqlite.database_url == f"sqlite:///{tmp_path / 'watchme.db'}"
    rest = load_deployment({**base, "SUPABASE_URL": "http://127.0.0.1:9",
                            "SUPABASE_KEY": "service-role-secret"})
    assert (rest.result_backend, rest.database_url) == ("supabase", None)
    assert "service-role-secret" not in repr(rest)
    store = build_resources(rest)["result_store"]
    assert isinstance(store, SupabaseResultStore) and isinstance(store.key, dg.EnvVar)
    both = load_deployment({**base, "SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_KEY": "k",
                            "WATCHME_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/w"})
    assert (both.result_backend, both.supabase_url) == ("sql", None)  # the URL wins
    assert isinstance(build_resources(both)["result_store"], SqlResultStore)
