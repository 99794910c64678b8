"""One query layer for every backend: each query of the store is written once, as a few
conditions on a table, and run by the backend's gateway.

* ``SqlGateway``: SQLAlchemy on SQLite (the embedded default) or PostgreSQL (Supabase's
  database by its connection string included); ``atomic()`` makes one transaction.
* ``RestGateway``: Supabase's REST API (PostgREST) through the ``supabase`` client, for
  deployments that have only the project URL and its service key; not atomic across requests.

Why our own small layer: the store's queries are filters, upserts and one grouped count,
which both SQLAlchemy and PostgREST express directly; an ORM or a second query language would
not run on PostgREST. What PostgREST cannot do (a conditional upsert, a join) stays SQL-only
(``sql_engine``), and the store says so by name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

REST_PAGE = 1000  # PostgREST's usual max-rows

# A condition: (op, column, value), op one of eq (None: is null), in, not_in, gte, lt, endswith;
# or ("any", conds).
Cond = tuple


class ResultStoreError(RuntimeError):
    """A write or read the backend refused; the message names the table."""


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


def _insert(dialect: str, table: sa.Table):
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL's or SQLite's)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


class SqlGateway:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """The calls inside are one transaction (nested: the outer one)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self.engine.begin() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sa.Connection]:
        if (conn := getattr(self._local, "conn", None)) is not None:
            yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @staticmethod
    def _clause(table: sa.Table, cond: Cond) -> Any:
        op = cond[0]
        if op == "any":
            return sa.or_(*[SqlGateway._clause(table, c) for c in cond[1]])
        col, value = table.c[cond[1]], cond[2]
        return {"eq": lambda: (col.is_(value) if isinstance(value, bool) or value is None
                               else col == value),
                "in": lambda: col.in_(list(value)), "not_in": lambda: col.not_in(list(value)),
                "gte": lambda: col >= value, "lt": lambda: col < value,
                "endswith": lambda: col.endswith(value, autoescape=True)}[op]()

    def _where(self, query: Any, table: sa.Table, where: Sequence[Cond]) -> Any:
        return query.where(*[self._clause(table, c) for c in where]) if where else query

    def select(self, table: sa.Table, where: Sequence[Cond] = (), columns: Sequence[str] = (),
               order: Sequence[str] = (), limit: int | None = None,
               all_pages: bool = False) -> list[dict]:
        cols = [table.c[c] for c in columns] or [table]
        query = self._where(sa.select(*cols), table, where).order_by(
            *[table.c[c] for c in order])
        if limit is not None:
            query = query.limit(limit)
        with self._conn() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def count_by(self, table: sa.Table, where: Sequence[Cond], by: Sequence[str],
                 latest: str) -> list[tuple]:
        """(*by, rows, max of ``latest``) per group."""
        query = self._where(sa.select(*[table.c[b] for b in by], sa.func.count(),
                                      sa.func.max(table.c[latest])), table, where)
        with self._conn() as conn:
            return [tuple(r) for r in conn.execute(query.group_by(*[table.c[b] for b in by]))]

    def upsert(self, table: sa.Table, rows: Sequence[dict],
               update: Sequence[str] | None = None) -> None:
        if not rows:
            return
        rows = [clean_value(dict(r)) for r in rows]
        keys = [c.name for c in table.primary_key.columns]
        cols = list(update) if update is not None else [k for k in rows[0] if k not in keys]
        with self._conn() as conn:
            stmt = _insert(conn.dialect.name, table)
            stmt = (stmt.on_conflict_do_update(index_elements=keys,
                                               set_={c: stmt.excluded[c] for c in cols})
                    if cols else stmt.on_conflict_do_nothing(index_elements=keys))
            conn.execute(stmt, rows)

    def update(self, table: sa.Table, values: dict, where: Sequence[Cond]) -> None:
        with self._conn() as conn:
            conn.execute(self._where(sa.update(table), table, where).values(**values))

    def delete(self, table: sa.Table, where: Sequence[Cond]) -> None:
        with self._conn() as conn:
            conn.execute(self._where(sa.delete(table), table, where))


class RestGateway:
    def __init__(self, client: Any) -> None:
        self.client = client

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        yield  # PostgREST: one request at a time

    @staticmethod
    def _text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    def _filter(self, request: Any, where: Sequence[Cond]) -> Any:
        for cond in where:
            op = cond[0]
            if op == "any":
                request = request.or_(",".join(f"{c[1]}.{c[0]}.{self._text(c[2])}"
                                               for c in cond[1]))
            elif op == "eq" and cond[2] is None:
                request = request.is_(cond[1], "null")
            elif op == "eq":
                request = request.eq(cond[1], cond[2])
            elif op == "endswith":  # PostgREST's like: * is the wildcard
                request = request.like(cond[1], f"*{cond[2]}")
            elif op == "in":
                request = request.in_(cond[1], list(cond[2]))
            elif op == "not_in":
                keep = ",".join(f'"{v}"' for v in cond[2])
                request = request.filter(cond[1], "not.in", f"({keep})")
            elif op == "gte":
                request = request.gte(cond[1], self._json(cond[2]))
            elif op == "lt":
                request = request.lt(cond[1], self._json(cond[2]))
        return request

    @staticmethod
    def _json(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    def _run(self, table: sa.Table, request: Any) -> Any:
        from postgrest.exceptions import APIError

        try:
            return request.execute()
        except APIError as exc:
            raise ResultStoreError(
                f"{table.name}: PostgREST error {exc.code}: {exc.message}"
                + (f" ({exc.hint})" if exc.hint else "")) from None

    def select(self, table: sa.Table, where: Sequence[Cond] = (), columns: Sequence[str] = (),
               order: Sequence[str] = (), limit: int | None = None,
               all_pages: bool = False) -> list[dict]:
        def build() -> Any:
            request = self._filter(self.client.table(table.name).select(
                ",".join(columns) or "*"), where)
            for col in order:
                request = request.order(col)
            return request.limit(limit) if limit is not None else request

        if not all_pages:
            return self._run(table, build()).data
        rows: list[dict] = []
        while True:  # every row, page by page (PostgREST caps a response)
            page = self._run(table, build().range(len(rows), len(rows) + REST_PAGE - 1)).data
            rows.extend(page)
            if len(page) < REST_PAGE:
                return rows

    def count_by(self, table: sa.Table, where: Sequence[Cond], by: Sequence[str],
                 latest: str) -> list[tuple]:
        """Grouped here: PostgREST has no GROUP BY (aggregates are off by default)."""
        rows = self.select(table, where, columns=[*by, latest], all_pages=True)
        if not rows:
            return []
        frame = pd.DataFrame(rows, columns=[*by, latest])
        frame[latest] = pd.to_datetime(frame[latest], utc=True)
        grouped = frame.groupby(list(by))[latest].agg(["count", "max"])
        return [(*(key if isinstance(key, tuple) else (key,)), int(n), last.to_pydatetime())
                for key, (n, last) in grouped.iterrows()]

    def _rows(self, rows: Sequence[dict]) -> list[dict]:
        return [{k: self._json(v) for k, v in clean_value(dict(r)).items()} for r in rows]

    def upsert(self, table: sa.Table, rows: Sequence[dict],
               update: Sequence[str] | None = None) -> None:
        """Merge-duplicates on the primary key: the columns sent are the ones updated."""
        if not rows:
            return
        keys = [c.name for c in table.primary_key.columns]
        if update is not None:
            rows = [{k: v for k, v in r.items() if k in (*keys, *update)} for r in rows]
        self._run(table, self.client.table(table.name).upsert(
            self._rows(rows), on_conflict=",".join(keys), returning="minimal"))

    def update(self, table: sa.Table, values: dict, where: Sequence[Cond]) -> None:
        self._run(table, self._filter(self.client.table(table.name).update(
            self._rows([values])[0]), where))

    def delete(self, table: sa.Table, where: Sequence[Cond]) -> None:
        self._run(table, self._filter(self.client.table(table.name).delete(), where))
