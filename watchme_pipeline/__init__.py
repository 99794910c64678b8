"""WatchMe Pipeline: a Dagster code location from a day of wearable audio to a mood chart."""
