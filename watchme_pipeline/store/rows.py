"""A stage's rows: one device-day of any stage table, read and replaced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from watchme_pipeline import schema
from watchme_pipeline.store.gateway import ResultStoreError, SqlGateway
from watchme_pipeline.store.types import typed_frame

# The recordings table is keyed by local date; every stage table by date.
DATE_COLUMNS = ("date", "local_date")


def date_column(table: Any) -> str | None:
    """The column that holds a table's day, if it has one."""
    return next((c for c in DATE_COLUMNS if c in table.c), None)


class StageRows:
    """Mixed into ResultStore: ``gateway()`` is the backend's."""

    def gateway(self) -> Any:
        raise NotImplementedError  # the backend's (SqlResultStore, SupabaseResultStore)

    def read(self, table_name: str, device_id: str, date: str) -> pd.DataFrame:
        """A table's rows for one device-day, typed alike on every backend (``typed_frame``)."""
        table = schema.table(table_name)
        date_col = date_column(table)
        order = [k for k in ("time_block", "recorded_at", "file_path") if k in table.c]
        rows = self.gateway().select(table, [("eq", "device_id", device_id),
                                             ("eq", date_col, date)], order=order)
        return typed_frame(table, rows)

    def stage_rows(self, stage: Any, device_id: str, date: str) -> pd.DataFrame:
        """A stage's rows (its first table) for one device-day."""
        return self.read(stage.table.name, device_id, date)

    def replace_partition(self, table_name: str, device_id: str, date: str,
                          rows: Sequence[Mapping], only_keys: bool = False) -> None:
        """Upsert ``rows`` for one device-day (old rows or new, never half, on SQL).

        Unless ``only_keys``, per-slot rows of the day that are not in ``rows`` are deleted,
        so the table holds exactly what the last materialization computed.
        """
        table, gateway = schema.table(table_name), self.gateway()
        with gateway.atomic():
            if not only_keys and "time_block" in table.c:
                gateway.delete(table, [("eq", "device_id", device_id), ("eq", "date", date),
                                       ("not_in", "time_block",
                                        [r["time_block"] for r in rows])])
            gateway.upsert(table, [dict(r) for r in rows])

    def read_days(self, table_name: str, device_id: str, dates: Sequence[str],
                  columns: Sequence[str] = ()) -> pd.DataFrame:
        """A table's rows of one device for several days (``columns``: only those)."""
        table = schema.table(table_name)
        order = [k for k in ("date", "time_block") if k in table.c]
        rows = self.gateway().select(table, [("eq", "device_id", device_id),
                                             ("in", "date", list(dates))],
                                     columns=columns, order=order, all_pages=True)
        return typed_frame(table, rows)[list(columns)] if columns else typed_frame(table, rows)

    def select_rows(self, table_name: str, where: Sequence[tuple]) -> pd.DataFrame:
        """A table's rows matching ``where`` ((op, column, value) conditions)."""
        table = schema.table(table_name)
        return typed_frame(table, self.gateway().select(table, where, all_pages=True))

    def replace_rows(self, table_name: str, rows: Sequence[Mapping]) -> None:
        """Insert ``rows``, replacing those with the same keys."""
        self.gateway().upsert(schema.table(table_name), [dict(r) for r in rows])

    def replace_day(self, table_name: str, device_id: str, date: str,
                    rows: Sequence[Mapping]) -> None:
        """Replace all of a device-day's rows with ``rows`` (a table with several rows per
        slot, whose keys change from one run to the next)."""
        table, gateway = schema.table(table_name), self.gateway()
        with gateway.atomic():
            gateway.delete(table, [("eq", "device_id", device_id), ("eq", "date", date)])
            if rows:
                gateway.upsert(table, [dict(r) for r in rows])

    def devices_with_rows(self, table_name: str, date: str) -> set[str]:
        """Devices with a row in a day-level table for ``date`` (a fleet-wide read)."""
        table = schema.table(table_name)
        rows = self.gateway().select(table, [("eq", "date", date)], columns=["device_id"],
                                     all_pages=True)
        return {r["device_id"] for r in rows}

    def sql_gateway(self, what: str) -> SqlGateway:
        """The SQL gateway, for what only SQL does; else an error naming ``what``."""
        gateway = self.gateway()
        if not isinstance(gateway, SqlGateway):
            raise ResultStoreError(f"{what} needs the SQL result store "
                                   "(WATCHME_DATABASE_URL, Supabase's PostgreSQL URL included)")
        return gateway
