"""The fault and bad-input campaign with figures (`make reliability`).

    python benchmarks/reliability.py [DAYS]
"""

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("WATCHME_MODEL_PROFILE", "tiny")

from reliability import run_campaign, table  # noqa: E402
from report import RESULTS, write_page  # noqa: E402

from watchme_pipeline.models.tiny import TINY_BUILDERS  # noqa: E402


def main(days: int) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="watchme-models-") as models:
        for build in TINY_BUILDERS.values():
            build(Path(models))
        outcomes = run_campaign(Path(models), days)
    for o in outcomes:
        if o.problems:
            print(f"{o.scenario}: {o.problems}")
    print(table(outcomes))
    (RESULTS / "reliability.json").write_text(json.dumps({
        "machine": {"nproc": os.cpu_count()}, "device_days": days,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "outcomes": [dataclasses.asdict(o) for o in outcomes]}, indent=1) + "\n")
    write_page("reliability.md")  # docs/reliability.md from what was just measured
    if any(o.lost or o.duplicated or o.problems for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
