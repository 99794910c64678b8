"""Rows as frames typed alike on every backend, and timestamps as aware UTC."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from watchme_pipeline import schema


def aware(value: dt.datetime | str | None) -> dt.datetime | None:
    """A timestamp as aware UTC, whether the driver gave a datetime or SQLite's text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def typed_frame(table: sa.Table | str, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with the table's columns, typed alike on every backend: booleans as
    bool (SQLite gives 0/1, PostgREST JSON true/false, a NULL is False), timestamps as aware
    UTC datetimes."""
    if isinstance(table, str):
        table = schema.table(table)
    df = pd.DataFrame([dict(r) for r in records], columns=[c.name for c in table.columns])
    for c in table.columns:
        if isinstance(c.type, sa.Boolean):
            df[c.name] = df[c.name].map(lambda v: bool(v) if v is not None and v == v
                                        else False).astype(bool)
        elif isinstance(c.type, schema.UTCDateTime) and len(df):
            if not all(isinstance(v, dt.datetime) or v is None for v in df[c.name]):
                df[c.name] = pd.to_datetime(df[c.name], utc=True).dt.to_pydatetime()
    return df
