"""The code location: one Definitions object, assembled from the environment's settings."""

from __future__ import annotations

import os

import dagster as dg

from watchme_pipeline.assets import ALL_ASSETS
from watchme_pipeline.checks import ALL_CHECKS
from watchme_pipeline.deployment import executor_from_env
from watchme_pipeline.partitions import device_day_partitions
from watchme_pipeline.resources import (
    S3AudioStore,
    SqlResultStore,
    audio_store_from_url,
    mood_scorer_from_env,
    result_store_from_env,
)
from watchme_pipeline.resources.io_manager import result_store_io_manager
from watchme_pipeline.resources.model_registry import model_registry_from_env
from watchme_pipeline.sensors import new_audio_sensor, record_failed_runs
from watchme_pipeline.settings import Settings, load_settings

device_day_job = dg.define_asset_job(
    "device_day_job",
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    partitions_def=device_day_partitions,
    description="The whole graph for one device-day (what the sensor launches).",
)


def build_resources(settings: Settings) -> dict:
    env = os.environ
    return {
        "audio_store": audio_store_from_url(settings.audio_store, env),
        "result_store": result_store_from_env(env, settings.database_url),
        "model_registry": model_registry_from_env(env, settings.model_profile,
                                                  str(settings.model_cache)),
        "mood_scorer": mood_scorer_from_env(env),
        "io_manager": result_store_io_manager,
    }


def storage_kinds(resources: dict) -> tuple[str, str]:
    """The kind tags of the configured stores: (audio: s3 or folder, results: sqlite,
    postgres or supabase), so the catalog says what a run will really touch."""
    audio = "s3" if isinstance(resources["audio_store"], S3AudioStore) else "folder"
    store = resources["result_store"]
    if isinstance(store, SqlResultStore):
        import sqlalchemy as sa

        backend = sa.make_url(store.database_url).get_backend_name()
        results = "postgres" if backend.startswith("postgres") else backend
    else:
        results = "supabase"
    return audio, results


def configured_assets(resources: dict) -> list:
    """ALL_ASSETS with kind tags for the stores they use: ``audio`` and ``sql`` in the asset
    modules are placeholders replaced here, where the configuration is known."""
    audio, results = storage_kinds(resources)

    def retag(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = set(spec.kinds)
        if "audio" in kinds:
            kinds = (kinds - {"audio"}) | {audio}
        if "sql" in kinds:
            kinds = (kinds - {"sql"}) | {results}
        return spec.replace_attributes(kinds=kinds)

    return list(dg.map_asset_specs(retag, ALL_ASSETS))


# Brings vibe_prompt and mood_chart up to date whenever any upstream partition changes
# (late uploads included); on by default.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "watchme_automation",
    target=dg.AssetSelection.assets(*ALL_ASSETS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

_resources = build_resources(load_settings())
defs = dg.Definitions(
    assets=configured_assets(_resources),
    asset_checks=ALL_CHECKS,
    jobs=[device_day_job],
    sensors=[new_audio_sensor, record_failed_runs, automation_sensor],
    resources=_resources,
    # In-process by default: the steps of a run share one process, its decoded audio and its
    # models. WATCHME_DEPLOYMENT=multiprocess|k8s picks another executor (deployment.py).
    executor=executor_from_env(os.environ),
)


def device_day_job_from_env() -> dg.JobDefinition:
    """device_day_job built afresh from the current environment: the entry point of
    ``dg.reconstructable`` for executors that start each step in a new process."""
    resources = build_resources(load_settings())
    return dg.Definitions(
        assets=configured_assets(resources), asset_checks=ALL_CHECKS, jobs=[device_day_job],
        resources=resources, executor=executor_from_env(os.environ),
    ).resolve_job_def("device_day_job")
