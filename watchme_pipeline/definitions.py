"""The code location: one Definitions object, assembled from the environment.

This is the only module that reads the environment: ``settings.load_deployment`` parses it
once into a typed ``Deployment``, the builders below make the resources from that, and
everything below gets them from Dagster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from watchme_pipeline.assets import build_assets
from watchme_pipeline.checks import build_checks
from watchme_pipeline.deployment import executor_for
from watchme_pipeline.partitions import build_partitions
from watchme_pipeline.reconcile import build_reconciliation
from watchme_pipeline.resources import (
    SqlResultStore,
    audio_store_for,
    mood_scorer_for,
    result_store_for,
)
from watchme_pipeline.resources.alert_channels import alert_channels_for
from watchme_pipeline.resources.model_registry import model_registry_for
from watchme_pipeline.resources.upload_queue import upload_queue_for
from watchme_pipeline.sensors import (
    build_alert_sensors,
    build_charts_on_time_check,
    build_new_audio_sensor,
    build_upload_queue_sensor,
    record_failed_runs,
)
from watchme_pipeline.settings import (
    Deployment,
    launch_settings,
    load_deployment,
    run_settings,
)

JOB_NAME = "device_day_job"


def build_resources(deployment: Deployment) -> dict:
    """The resources every asset, check and sensor gets, for this deployment."""
    return {
        "audio_store": audio_store_for(deployment),
        "result_store": result_store_for(deployment),
        "model_registry": model_registry_for(deployment),
        "mood_scorer": mood_scorer_for(deployment),
        "settings": run_settings(deployment),
        "alert_channels": alert_channels_for(deployment),
        # Only with WATCHME_UPLOAD_QUEUE: uploads come from S3 notifications, not a listing.
        **({"upload_queue": queue} if (queue := upload_queue_for(deployment)) else {}),
    }


def storage_kinds(resources: dict) -> tuple[str, str]:
    """The kind tags of the configured stores: (audio: s3 or folder, results: sqlite,
    postgres or supabase), so the catalog says what a run will really touch."""
    audio = resources["audio_store"].kind()
    store = resources["result_store"]
    if isinstance(store, SqlResultStore):
        import sqlalchemy as sa

        backend = sa.make_url(store.database_url).get_backend_name()
        results = "postgres" if backend.startswith("postgres") else backend
    else:
        results = "supabase"
    return audio, results


def configured_assets(assets: list[dg.AssetsDefinition], resources: dict) -> list:
    """The assets with kind tags for the stores they use: ``audio`` and ``sql`` in the asset
    modules are placeholders replaced here, where the configuration is known."""
    audio, results = storage_kinds(resources)

    def retag(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = set(spec.kinds)
        if "audio" in kinds:
            kinds = (kinds - {"audio"}) | {audio}
        if "sql" in kinds:
            kinds = (kinds - {"sql"}) | {results}
        return spec.replace_attributes(kinds=kinds)

    return list(dg.map_asset_specs(retag, assets))


def build_definitions(env: Mapping[str, str]) -> dg.Definitions:
    """Everything the code location serves, for this environment."""
    deployment = load_deployment(env)
    resources = build_resources(deployment)
    partitions = build_partitions(deployment.timezone, deployment.start_date,
                                  deployment.device_groups)
    assets = build_assets(partitions, resources["model_registry"], resources["settings"],
                          resources["mood_scorer"].name())
    charts_on_time = build_charts_on_time_check(deployment.alerts.policy)
    # The fleet-wide chart check belongs to its sensor (and the UI), not to device-day runs.
    selection = dg.AssetSelection.assets(*assets) - dg.AssetSelection.checks(charts_on_time)
    job = dg.define_asset_job(
        JOB_NAME, selection=selection,
        description="The whole graph for one device-day (what the sensor launches).",
    )
    # Brings vibe_prompt and mood_chart up to date whenever any upstream partition changes
    # (late uploads included); on by default.
    automation = dg.AutomationConditionSensorDefinition(
        "watchme_automation", target=selection, default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
    jobs: list = [job]
    schedules: list = []
    if deployment.upload_queue:  # uploads from S3 notifications, reconciled daily
        new_audio_sensor = build_upload_queue_sensor(partitions, JOB_NAME,
                                                     deployment.run_delay_s)
        reconcile_job, reconcile_daily = build_reconciliation(deployment.timezone)
        jobs.append(reconcile_job)
        schedules.append(reconcile_daily)
    else:
        new_audio_sensor = build_new_audio_sensor(partitions, JOB_NAME)
    return dg.Definitions(
        assets=configured_assets(assets, resources),
        asset_checks=[*build_checks(partitions), charts_on_time],
        jobs=jobs,
        schedules=schedules,
        sensors=[new_audio_sensor, record_failed_runs, automation,
                 *build_alert_sensors(deployment.alerts.policy)],
        resources={**resources, "settings": launch_settings(resources["settings"])},
        # In-process by default: the steps of a run share one process and its models.
        # WATCHME_DEPLOYMENT=multiprocess|k8s picks another executor (deployment.py).
        executor=executor_for(deployment),
    )


defs = build_definitions(os.environ)


def device_day_job_from_env() -> dg.JobDefinition:
    """device_day_job built afresh from the current environment: the entry point of
    ``dg.reconstructable`` for executors that start each step in a new process."""
    return build_definitions(os.environ).resolve_job_def(JOB_NAME)
