"""What the store keeps of one person (one device), in one place: every table's rows of the
device (to export or forget them) and the audit of data requests (``data_requests``), which
also says which devices are forgotten (refused until re-admitted)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable

import pandas as pd

from watchme_pipeline import schema
from watchme_pipeline.store.rows import StageRows, date_column
from watchme_pipeline.store.types import typed_frame

FORGET, READMIT, EXPORT = "forget", "readmit", "export"  # data_requests.kind


def device_tables() -> list:
    """Every table that holds rows of a device (a ``device_id`` column); ``data_requests``
    is the audit and is kept."""
    return [t for t in schema.tables().values()
            if "device_id" in t.c and t.name != schema.data_requests.name]


def dated_device_tables() -> list:
    """The device tables keyed by a day as well (what an export holds per day)."""
    return [t for t in device_tables() if date_column(t)]


class PersonalData(StageRows):
    # -- a device's rows ---------------------------------------------------------------------

    def device_rows(self, table_name: str, device_id: str, since: str | None = None,
                    until: str | None = None) -> pd.DataFrame:
        """A table's rows of one device, between two dates (inclusive) if given."""
        table = schema.table(table_name)
        column = date_column(table)
        where: list = [("eq", "device_id", device_id)]
        if since and column:
            where.append(("gte", column, since))
        if until and column:  # inclusive: dates are ISO text, so "< the next day"
            next_day = (dt.date.fromisoformat(until) + dt.timedelta(days=1)).isoformat()
            where.append(("lt", column, next_day))
        order = [c for c in (column, "time_block", "file_path") if c and c in table.c]
        return typed_frame(table, self.gateway().select(table, where, order=order,
                                                        all_pages=True))

    def device_dates(self, device_id: str) -> list[str]:
        """The days the store has rows of the device for, in any table."""
        dates: set[str] = set()
        for table in dated_device_tables():
            column = date_column(table)
            dates |= {r[column] for r in self.gateway().select(
                table, [("eq", "device_id", device_id)], columns=[column], all_pages=True)}
        return sorted(dates)

    def delete_device_rows(self, device_id: str,
                           record: Callable[[dict[str, int]], None]) -> None:
        """Delete every row of the device, table by table, each table's count given to
        ``record`` before its rows go (a second run after a kill deletes what is left)."""
        gateway = self.gateway()
        for table in device_tables():
            where = [("eq", "device_id", device_id)]
            found = len(gateway.select(table, where, columns=["device_id"], all_pages=True))
            record({f"table {table.name}": found})
            if found:
                gateway.delete(table, where)
        # The failure log names a device in its partition key ("date|device", or a range of
        # them): per-device partitions end with the device.
        failures = schema.run_failures
        named = [r["run_id"] for r in gateway.select(
            failures, [("endswith", "partition", f"|{device_id}")], columns=["run_id"],
            all_pages=True)]
        record({f"table {failures.name}": len(named)})
        if named:
            gateway.delete(failures, [("in", "run_id", named)])

    # -- the audit of data requests ----------------------------------------------------------

    def open_request(self, device_id: str, kind: str) -> tuple[str, bool]:
        """The device's unfinished request of this kind (resumed after a kill), or a new one;
        (request id, resumed)."""
        requests = schema.data_requests
        open_ = self.gateway().select(requests, [("eq", "device_id", device_id),
                                                 ("eq", "kind", kind),
                                                 ("eq", "finished_at", None)],
                                      order=["requested_at"], limit=1)
        if open_:
            return open_[0]["request_id"], True
        request_id = uuid.uuid4().hex
        self.gateway().upsert(requests, [{"request_id": request_id, "device_id": device_id,
                                          "kind": kind, "requested_at": dt.datetime.now(dt.UTC),
                                          "counts": {}}])
        return request_id, False

    def add_request_counts(self, request_id: str, counts: dict[str, int]) -> dict[str, int]:
        """Record what each place held when the request reached it; a place already counted
        (by a run that was killed after counting it) keeps its first count. Returns the
        counts of these places as recorded."""
        requests = schema.data_requests
        [row] = self.gateway().select(requests, [("eq", "request_id", request_id)])
        merged = dict(row["counts"] or {})
        for place, n in counts.items():
            merged.setdefault(place, int(n))
        self.gateway().update(requests, {"counts": merged}, [("eq", "request_id", request_id)])
        return {place: merged[place] for place in counts}

    def finish_request(self, request_id: str) -> dict:
        requests = schema.data_requests
        self.gateway().update(requests, {"finished_at": dt.datetime.now(dt.UTC)},
                              [("eq", "request_id", request_id)])
        return self.gateway().select(requests, [("eq", "request_id", request_id)])[0]

    def data_requests(self, device_id: str | None = None) -> pd.DataFrame:
        where = [("eq", "device_id", device_id)] if device_id else []
        return typed_frame(schema.data_requests, self.gateway().select(
            schema.data_requests, where, order=["requested_at"], all_pages=True))

    def readmit(self, device_id: str) -> str:
        """Accept the device's uploads again (after a forget): an audit row, finished."""
        request_id, _ = self.open_request(device_id, READMIT)
        self.finish_request(request_id)
        return request_id

    def forgotten(self, devices: Iterable[str] | None = None) -> set[str]:
        """Of ``devices`` (all when None), those forgotten and not re-admitted since: the
        latest forget or readmit request decides. Reads the audit only (a handful of rows),
        never the fleet's history."""
        where: list = [("in", "kind", [FORGET, READMIT])]
        if devices is not None:
            devices = list(devices)
            if not devices:
                return set()
            where.append(("in", "device_id", devices))
        latest: dict[str, tuple] = {}
        for r in self.gateway().select(schema.data_requests, where,
                                       columns=["device_id", "kind", "requested_at"],
                                       order=["requested_at"], all_pages=True):
            latest[r["device_id"]] = r["kind"]
        return {d for d, kind in latest.items() if kind == FORGET}
