"""WatchMe Pipeline: a Dagster code location from a day of wearable audio to a mood chart."""

import warnings

from watchme_pipeline.settings import quiet_idle_threads

quiet_idle_threads()  # before torch is first imported

# Backfill policies and partitioned asset checks are marked beta/preview; we use them on purpose.
warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
