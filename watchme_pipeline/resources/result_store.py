"""The result store: one SQLAlchemy code path for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import PrivateAttr

from watchme_pipeline import schema
from watchme_pipeline.schema import STAGES


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clean_value(value: Any) -> Any:
    """NaN and infinity become None, at any depth (they break JSON and PostgREST)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return clean_value(value.item())
    return value


class ResultStore(dg.ConfigurableResource):
    """Tables of the brief, written with upserts keyed on their primary keys."""

    database_url: str

    _engine: sa.Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = sa.make_url(self.database_url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 30} if url.get_backend_name() == "sqlite" else {}
            self._engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            schema.metadata.create_all(self._engine)  # created with its schema on first use
        return self._engine

    def describe(self) -> str:
        return sa.make_url(self.database_url).render_as_string(hide_password=True)

    # -- generic -----------------------------------------------------------------------------

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: Sequence[dict],
                update: Iterable[str] | None = None) -> None:
        if not rows:
            return
        rows = [clean_value(r) for r in rows]
        keys = [c.name for c in table.primary_key.columns]
        cols = list(update) if update is not None else [k for k in rows[0] if k not in keys]
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        stmt = (
            stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
            )
            if cols
            else stmt.on_conflict_do_nothing(index_elements=keys)
        )
        conn.execute(stmt, rows)

    def replace_partition(self, table_name: str, device_id: str, date: str,
                          rows: Sequence[dict], only_keys: bool = False) -> None:
        """Upsert ``rows`` for one device-day in one transaction (old rows or new, never half).

        Unless ``only_keys``, rows of the day that are not in ``rows`` are deleted, so the
        table holds exactly what the last materialization computed.
        """
        table = schema.TABLES[table_name]
        with self.engine.begin() as conn:
            if not only_keys and "time_block" in table.c:
                keep = [r["time_block"] for r in rows]
                conn.execute(
                    sa.delete(table).where(
                        table.c.device_id == device_id, table.c.date == date,
                        table.c.time_block.not_in(keep),
                    )
                )
            self._upsert(conn, table, rows)

    def read(self, table_name: str, device_id: str, date: str) -> pd.DataFrame:
        table = schema.TABLES[table_name]
        date_col = table.c.local_date if table_name == "audio_files" else table.c.date
        order = [table.c[k] for k in ("time_block", "recorded_at") if k in table.c]
        query = sa.select(table).where(table.c.device_id == device_id, date_col == date)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*order)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in table.columns])

    # -- audio_files ---------------------------------------------------------------------------

    def register_recordings(self, rows: Sequence[dict]) -> None:
        """Insert newly found recordings as pending; refresh file facts, keep their statuses."""
        facts = ["file_path", "file_size", "duration_s", "sample_rate", "decodes", "updated_at"]
        now = _now()
        with self.engine.begin() as conn:
            self._upsert(conn, schema.audio_files, [{**r, "updated_at": now} for r in rows],
                         update=facts)

    def set_status(self, device_id: str, recorded_at: Iterable[dt.datetime], stage: str,
                   status: str, error: str | None = None) -> None:
        if stage not in STAGES or status not in schema.STATUSES:
            raise ValueError(f"unknown stage/status {stage!r}/{status!r}")
        recorded_at = list(recorded_at)
        if not recorded_at:
            return
        t = schema.audio_files
        values: dict[str, Any] = {f"{stage}_status": status, "updated_at": _now()}
        if status == "failed":
            values["error"] = error
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.device_id == device_id, t.c.recorded_at.in_(recorded_at))
                .values(**values)
            )
            if status == "completed":
                # A slot that now completes every stage has no error left to show.
                done = sa.and_(*[t.c[f"{s}_status"].in_(("completed", "superseded"))
                                 for s in STAGES])
                conn.execute(
                    sa.update(t)
                    .where(t.c.device_id == device_id, t.c.recorded_at.in_(recorded_at), done)
                    .values(error=None)
                )
