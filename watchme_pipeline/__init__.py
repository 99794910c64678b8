"""WatchMe Pipeline: a Dagster code location from a day of wearable audio to a mood chart."""

import os
import warnings

# Idle OpenMP threads sleep instead of spinning: two busy-waiting torch processes on 2 cores
# slowed small ops 40-fold. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Backfill policies and partitioned asset checks are marked beta/preview; we use them on purpose.
warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
