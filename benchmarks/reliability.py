"""The fault and bad-input campaign with figures (`make reliability`).

    python benchmarks/reliability.py [DAYS]
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("WATCHME_MODEL_PROFILE", "tiny")

from reliability import run_campaign, table  # noqa: E402

from watchme_pipeline.models.tiny import TINY_BUILDERS  # noqa: E402


def main(days: int) -> None:
    with tempfile.TemporaryDirectory(prefix="watchme-models-") as models:
        for build in TINY_BUILDERS.values():
            build(Path(models))
        outcomes = run_campaign(Path(models), days)
    for o in outcomes:
        if o.problems:
            print(f"{o.scenario}: {o.problems}")
    print(table(outcomes))
    if any(o.lost or o.duplicated or o.problems for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
