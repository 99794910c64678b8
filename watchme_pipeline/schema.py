"""What every table is made of, and the tables that belong to no stage.

Each stage's tables are defined in its own module (``stages/*.py``) on this ``metadata``,
compatible with the tables the WatchMe dashboard reads (see the brief). The SQL files in
``migrations/`` create them on every backend; these definitions are what the code queries
with, and ``tests/test_result_store.py`` proves the two agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()
JSON = sa.JSON().with_variant(JSONB(), "postgresql")

STATUSES = ("pending", "processing", "completed", "failed", "superseded")


class UTCDateTime(sa.types.TypeDecorator):
    """timestamptz on PostgreSQL; on SQLite stored as naive UTC and read back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def key_columns(*names: str) -> list[sa.Column]:
    """Text primary-key columns (device_id, date, time_block, ...)."""
    return [sa.Column(n, sa.Text, primary_key=True) for n in names]


def slot_row_columns(*columns: sa.Column) -> list[sa.Column]:
    """A slot stage's table: keyed by device-day and slot, its own columns, then what made
    each row (model and maker: the settings that shaped it) and when."""
    return [*key_columns("device_id", "date", "time_block"), *columns,
            sa.Column("model", sa.Text), sa.Column("maker", sa.Text),
            sa.Column("processed_at", UTCDateTime)]


run_failures = sa.Table(
    "run_failures", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("job_name", sa.Text),
    sa.Column("partition", sa.Text),
    sa.Column("steps", sa.Text),
    sa.Column("error_class", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("failed_at", UTCDateTime),
    sa.Index("run_failures_failed_at", "failed_at"),  # failures since a cursor (0005)
)

# The upload ledger of the queue sensor (0005): notified uploads not yet registered.
uploads = sa.Table(
    "uploads", metadata,
    sa.Column("file_path", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("local_date", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("sequencer", sa.Text, nullable=False, server_default=""),
    sa.Column("noted_at", UTCDateTime, nullable=False),
    sa.Column("requested_at", UTCDateTime),
    sa.Column("run_key", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("uploads_pending", "requested_at", "noted_at"),
)

# The audit of what was done with a person's data (privacy/): forget, export, readmit. Counts
# per place, never content; the latest forget or readmit of a device says whether its uploads
# are refused (0006).
data_requests = sa.Table(
    "data_requests", metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("counts", JSON),
    sa.Index("data_requests_device", "device_id", "kind"),
)



def table(name: str) -> sa.Table:
    """A table by name, the stages' included."""
    import watchme_pipeline.stages  # noqa: F401  (defines the stages' tables on ``metadata``)

    try:
        return metadata.tables[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}") from None


def tables() -> dict[str, sa.Table]:
    import watchme_pipeline.stages  # noqa: F401

    return {t.name: t for t in metadata.sorted_tables}
