"""Deployment profiles without a cluster: dagster-k8s's own schema and job construction, the
Dockerfile's install, and the multiprocess executor giving the same rows as in-process."""

import json
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from conftest import DATE, DEVICE, materialize_day
from dagster._config import process_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from watchme_pipeline.definitions import defs, device_day_job_from_env
from watchme_pipeline.deployment import K8S_EXECUTOR_CONFIG, POD_MEMORY, executor_for
from watchme_pipeline.settings import load_deployment
from watchme_pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def test_executor_profiles_are_configuration():
    def executor(kind: str | None) -> dg.ExecutorDefinition:
        return executor_for(load_deployment({"WATCHME_DEPLOYMENT": kind} if kind else {}))

    assert executor(None).name == "in_process"
    assert executor("multiprocess").name == "multiprocess"
    assert executor("k8s").name == "k8s"
    with pytest.raises(ValueError, match="WATCHME_DEPLOYMENT='celery': use one of local, "
                       "multiprocess, k8s"):
        executor("celery")


def test_k8s_executor_config_validates_against_dagster_k8s():
    result = process_config(k8s_job_executor.config_schema.config_type, K8S_EXECUTOR_CONFIG)
    assert result.success, result.errors
    assert result.value["max_concurrent"] == 3


def test_run_launcher_config_validates_against_dagster_k8s():
    config = yaml.safe_load((ROOT / "deploy/k8s/instance.yaml").read_text())["run_launcher"]
    assert (config["module"], config["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), config["config"])
    assert result.success, result.errors
    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_the_ui_is_reached_only_through_the_authenticating_proxy():
    """An operator console: no public ingress or service for the webserver; the only public
    address is oauth2-proxy's, whose upstream is the webserver's in-cluster service."""
    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    assert values["ingress"]["enabled"] is False
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    proxy = yaml.safe_load((ROOT / "deploy/helm/oauth2-proxy.yaml").read_text())
    assert proxy["extraArgs"]["upstream"].startswith(
        "http://dagster-dagster-webserver.watchme.svc.cluster.local")
    assert proxy["extraArgs"]["allowed-group"] and proxy["config"]["existingSecret"]
    assert proxy["ingress"]["enabled"] and proxy["ingress"]["tls"]
    assert "secret" not in json.dumps(proxy["extraArgs"]).lower()  # secrets from the Secret


@pytest.mark.parametrize("asset", sorted(POD_MEMORY))
def test_each_step_pod_gets_its_memory(asset):
    """Build the Kubernetes job dagster-k8s would create for the asset's step."""
    job = defs.resolve_job_def("device_day_job")
    node = job.graph.node_named(asset)
    tags = {k: (json.dumps(v) if not isinstance(v, str) else v)
            for k, v in node.definition.tags.items()}
    user_config = get_user_defined_k8s_config(tags)
    k8s_job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="registry.example.com/watchme:latest",
                            dagster_home="/opt/dagster/dagster_home",
                            instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{asset}",
        user_defined_k8s_config=user_config)
    container = k8s_job.spec.template.spec.containers[0]
    request, limit = POD_MEMORY[asset]
    assert (container.resources.requests["memory"], container.resources.limits["memory"]) == (
        request, limit)
    env = {e.name: e.value for e in container.env}
    assert env["WATCHME_MEMORY_MB"] == request.removesuffix("Mi")  # the process keeps under it


def test_dockerfile_installs_what_the_makefile_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"torch==[\d.]+", makefile).group(0)
    assert pin in dockerfile
    # One list of dependencies: both install the package from pyproject.toml, no other list.
    assert "pip install --no-cache-dir '.[k8s]'" in dockerfile
    assert "-e '.[dev]'" in makefile
    assert "requirements" not in dockerfile.lower()



def test_the_k8s_extra_pins_the_dagster_k8s_that_matches_dagster():
    """dagster-k8s 0.(X+16).Y goes with dagster 1.X.Y: the pin must be the one installed
    beside this dagster, or the image would run another release than the tests."""
    import tomllib
    from importlib.metadata import version

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    (pin,) = [r for r in extras["k8s"] if r.startswith("dagster-k8s")]
    pinned = pin.split("==")[1]
    assert pinned == version("dagster-k8s")
    major, minor, patch = version("dagster").split(".")[:3]
    assert major == "1" and pinned == f"0.{int(minor) + 16}.{patch}"


TABLES = [s.table.name for s in STAGES]  # each stage's rows


def rows(store, date):
    out = {}
    for table in TABLES:
        df = store.read(table, DEVICE, date).drop(
            # when each was processed, written or uploaded: not the same in the two stores
            columns=["processed_at", "updated_at", "generated_at", "chart_path", "uploaded_at"],
            errors="ignore").astype(object)
        out[table] = df.where(df.notna(), None).to_dict("records")
    return out


def test_multiprocess_executor_gives_the_same_rows(tmp_path, monkeypatch, tiny_models,
                                                   resources, instance, sample_day,
                                                   real_instance):
    from watchme_pipeline.resources import LocalAudioStore, SqlResultStore

    dates = [DATE]  # one device-day: the rows of every stage, compared field by field
    for date in dates:  # the reference: in-process, into the fixture's store
        assert materialize_day(resources, instance, date=date).success

    data = tmp_path / "mp"
    store = LocalAudioStore(root=str(data / "audio"))
    for date in dates:
        for key, blob in sample_day.items():
            store.write(key.replace(DATE, date), blob)
    (data / "models").symlink_to(tiny_models)
    for var, value in {"WATCHME_DEPLOYMENT": "multiprocess", "WATCHME_DATA_DIR": str(data),
                       "WATCHME_MODEL_PROFILE": "tiny", "WATCHME_MEMORY_MB": "1536"
                       }.items():
        monkeypatch.setenv(var, value)
    real_instance.add_dynamic_partitions("devices", [DEVICE])
    for date in dates:
        result = dg.execute_job(dg.reconstructable(device_day_job_from_env), instance=real_instance,
                                tags={"dagster/partition": f"{date}|{DEVICE}",
                                      "dagster/partition/date": date,
                                      "dagster/partition/device": DEVICE})
        assert result.success
        steps = {e.step_key for e in result.all_events if e.is_step_success}
        assert {"raw_audio", "transcripts", "event_scores", "emotion_scores", "vibe_prompt",
                "mood_chart"} <= steps
    mp_store = SqlResultStore(database_url=f"sqlite:///{data / 'watchme.db'}")
    for date in dates:
        assert rows(mp_store, date) == rows(resources["result_store"], date)
    # Each model step ran in its own process and reports that process's peak (VmHWM): it
    # keeps under the memory limit it was given.
    peaks = {e.asset_key.to_user_string(): e.materialization.metadata["peak_rss_mb"].value
             for e in result.get_asset_materialization_events()
             if "peak_rss_mb" in e.materialization.metadata}
    print(f"peak RSS per step process: {peaks} MB (limit 1536 MB)")
    assert {s.name for s in STAGES if s.model_kind} <= set(peaks)
    assert all(0 < mb < 1536 for mb in peaks.values()), peaks
