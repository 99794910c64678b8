"""Sensors: new audio starts runs; failures, overdue charts and silent devices reach a person."""

from watchme_pipeline.sensors.alerts import build_alert_sensors, build_charts_on_time_check
from watchme_pipeline.sensors.new_audio import build_new_audio_sensor, plan_tick
from watchme_pipeline.sensors.run_failures import record_failed_runs
from watchme_pipeline.sensors.upload_queue import build_upload_queue_sensor

__all__ = ["build_alert_sensors", "build_charts_on_time_check", "build_new_audio_sensor",
           "build_upload_queue_sensor", "plan_tick", "record_failed_runs"]
