"""Sensors: new audio in the store starts runs for the affected device-days."""

from watchme_pipeline.sensors.new_audio import new_audio_sensor, plan_tick

__all__ = ["new_audio_sensor", "plan_tick"]
