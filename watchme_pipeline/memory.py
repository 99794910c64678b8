"""What the run process holds, so it can keep under its memory limit (WATCHME_MEMORY_MB).

The limit is the process's, as a pod or a laptop sees it: the resident set, not only the
weights. The model registry measures it before each load (releasing models to make room) and
sizes batches from what is left.
"""

from __future__ import annotations

import ctypes
import gc
import os


def rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """This process's own high-water resident set, in MB (Linux VmHWM; 0 where unavailable).
    Not ``ru_maxrss``: Linux carries a parent's peak across fork and exec into the child, so a
    step process started by a large one would report its parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def give_back() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc keeps them otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
