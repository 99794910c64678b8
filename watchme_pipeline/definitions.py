"""The code location: one Definitions object, assembled from the environment and the list
of stages.

``settings.load_deployment`` parses the environment once into a typed ``Deployment``; the
builders below make the resources from that, and everything below gets them from Dagster.
The graph, its job and its checks are derived from ``stages.STAGES``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from watchme_pipeline.assets import build_assets
from watchme_pipeline.checks import build_checks
from watchme_pipeline.deployment import executor_for
from watchme_pipeline.partitions import build_partitions
from watchme_pipeline.privacy.jobs import build_forget_job
from watchme_pipeline.privacy.retention import build_retention
from watchme_pipeline.reconcile import build_reconciliation
from watchme_pipeline.resources import (
    SqlResultStore,
    audio_store_for,
    mood_scorer_for,
    result_store_for,
)
from watchme_pipeline.resources.alert_channels import alert_channels_for, no_channel_warning
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
from watchme_pipeline.stage import Makers, Stage
from watchme_pipeline.stages import STAGES

JOB_NAME = "device_day_job"
_said: set[str] = set()  # load-time warnings said in this process (definitions load again)


def say_once(warning: str) -> None:
    """A WARNING in the code location's log, once per process."""
    if warning not in _said:
        _said.add(warning)
        dg.get_dagster_logger("watchme_pipeline").warning(warning)


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


def store_kinds(resources: dict) -> dict[str, str]:
    """The kind tags of the configured stores by resource key (audio: s3 or folder; results:
    sqlite, postgres or supabase), so the catalog says what a run will really touch."""
    store = resources["result_store"]
    if isinstance(store, SqlResultStore):
        import sqlalchemy as sa

        backend = sa.make_url(store.database_url).get_backend_name()
        results = "postgres" if backend.startswith("postgres") else backend
    else:
        results = "supabase"
    return {"audio_store": resources["audio_store"].kind(), "result_store": results}


def build_definitions(env: Mapping[str, str] | Deployment, stages: tuple[Stage, ...] = STAGES
                      ) -> dg.Definitions:
    """Everything the code location serves, for this environment (or the deployment parsed
    from it) and list of stages."""
    deployment = env if isinstance(env, Deployment) else load_deployment(env)
    resources = build_resources(deployment)
    partitions = build_partitions(deployment.timezone, deployment.start_date,
                                  deployment.device_groups)
    makers = Makers(resources["model_registry"], resources["settings"],
                    resources["mood_scorer"].name())
    assets = build_assets(partitions, makers, stages, store_kinds(resources))
    channels = tuple(resources["alert_channels"].channels())
    if not channels:  # alerts that go nowhere are said at load, not found out at a failure
        say_once(no_channel_warning())
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
    # A person's data: forget a device from the UI; audio retention when configured.
    jobs: list = [job, build_forget_job([a.key for a in assets], deployment.device_groups)]
    schedules: list = []
    if deployment.audio_retention_days:
        retention_job, retention_daily = build_retention(deployment.timezone,
                                                         deployment.audio_retention_days)
        jobs.append(retention_job)
        schedules.append(retention_daily)
    if deployment.upload_queue:  # uploads from S3 notifications, reconciled daily
        intake_sensor = build_upload_queue_sensor(partitions, JOB_NAME, deployment.run_delay_s)
        reconcile_job, reconcile_daily = build_reconciliation(deployment.timezone)
        jobs.append(reconcile_job)
        schedules.append(reconcile_daily)
    else:
        intake_sensor = build_new_audio_sensor(partitions, JOB_NAME)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*build_checks(partitions), charts_on_time],
        jobs=jobs,
        schedules=schedules,
        sensors=[intake_sensor, record_failed_runs, automation,
                 *build_alert_sensors(deployment.alerts.policy, channels=channels)],
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
