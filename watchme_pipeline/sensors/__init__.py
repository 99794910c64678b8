"""Sensors: new audio in the store starts runs for the affected device-days."""

from watchme_pipeline.sensors.new_audio import build_new_audio_sensor, plan_tick
from watchme_pipeline.sensors.run_failures import record_failed_runs

__all__ = ["build_new_audio_sensor", "plan_tick", "record_failed_runs"]
