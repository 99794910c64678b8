"""The failure log: one row per failed run (``sensors/run_failures.py`` writes it), what the
failure alerts read from a cursor on."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from watchme_pipeline import schema
from watchme_pipeline.store.rows import StageRows
from watchme_pipeline.store.types import typed_frame


class RunFailures(StageRows):
    def record_run_failure(self, record: dict) -> None:
        self.gateway().upsert(schema.run_failures, [record])

    def run_failures(self) -> pd.DataFrame:
        return typed_frame(schema.run_failures,
                           self.gateway().select(schema.run_failures, all_pages=True))

    def run_failures_since(self, after: dt.datetime | None, limit: int = 500) -> pd.DataFrame:
        """Failures recorded at or after ``after`` (all if None), oldest first, at most
        ``limit``."""
        where = [("gte", "failed_at", after)] if after is not None else []
        rows = self.gateway().select(schema.run_failures, where, order=["failed_at", "run_id"],
                                     limit=limit)
        return typed_frame(schema.run_failures, rows)
