"""The result store: one interface, three backends chosen by configuration.

* ``SqlResultStore``: SQLite (the embedded default) and PostgreSQL / Supabase's database by URL,
  one SQLAlchemy code path; the dialect differences (upsert, JSON) live in ``_upsert`` and
  ``schema.JSON``. Each write of one asset for one partition is one transaction.
* ``SupabaseResultStore``: Supabase's REST API (PostgREST) through the ``supabase`` client,
  for deployments that only have an API key.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import PrivateAttr

from watchme_pipeline import schema
from watchme_pipeline.migrations import migrate
from watchme_pipeline.settings import Deployment
from watchme_pipeline.stages import RAW_AUDIO, STATUS_NAMES, StageSpec

REST_PAGE = 1000  # PostgREST's usual max-rows


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _insert(dialect: str, table: sa.Table):
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL's or SQLite's)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _aware(value: dt.datetime | str | None) -> dt.datetime | None:
    """A timestamp as aware UTC, whether the driver gave a datetime or SQLite's text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


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


class ResultStoreError(RuntimeError):
    """A write or read the backend refused; the message names the table."""


def typed_frame(table_name: str, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with the table's columns, typed alike on every backend: booleans as
    bool (SQLite gives 0/1, PostgREST JSON true/false, a NULL is False), timestamps as aware
    UTC datetimes."""
    table = schema.TABLES[table_name]
    df = pd.DataFrame([dict(r) for r in records], columns=[c.name for c in table.columns])
    for c in table.columns:
        if isinstance(c.type, sa.Boolean):
            df[c.name] = df[c.name].map(lambda v: bool(v) if v is not None and v == v
                                        else False).astype(bool)
        elif isinstance(c.type, schema.UTCDateTime) and len(df):
            if not all(isinstance(v, dt.datetime) or v is None for v in df[c.name]):
                df[c.name] = pd.to_datetime(df[c.name], utc=True).dt.to_pydatetime()
    return df


class ResultStore(dg.ConfigurableResource):
    """Tables of the brief, written with upserts keyed on their primary keys."""

    def describe(self) -> str:
        raise NotImplementedError

    def replace_partition(self, table_name: str, device_id: str, date: str,
                          rows: Sequence[dict], only_keys: bool = False) -> None:
        """Upsert ``rows`` for one device-day (old rows or new, never half, on SQL).

        Unless ``only_keys``, per-slot rows of the day that are not in ``rows`` are deleted,
        so the table holds exactly what the last materialization computed.
        """
        raise NotImplementedError

    def read(self, table_name: str, device_id: str, date: str) -> pd.DataFrame:
        """A table's rows for one device-day, typed (``typed_frame``)."""
        raise NotImplementedError

    def recordings(self, device_id: str, date: str) -> pd.DataFrame:
        """The day's recordings, one row per file, superseded ones included."""
        return self.read(RAW_AUDIO.table, device_id, date)

    def current_recordings(self, device_id: str, date: str) -> pd.DataFrame:
        """The current recording of each slot of the day: the one definition of "current"
        (raw_audio marks all but a slot's latest file ``superseded``)."""
        files = self.recordings(device_id, date)
        return files[~files.superseded].reset_index(drop=True)

    def stage_rows(self, spec: StageSpec, device_id: str, date: str) -> pd.DataFrame:
        """A stage's per-slot rows (its first table) for one device-day."""
        return self.read(spec.table, device_id, date)

    def register_recordings(self, rows: Sequence[dict]) -> None:
        """Insert newly found recordings as pending; refresh file facts, keep their statuses."""
        raise NotImplementedError

    def set_status(self, device_id: str, file_paths: Iterable[str], stage: str,
                   status: str, error: str | None = None) -> None:
        """Set ``{stage}_status`` of these recordings (audio_files is keyed by file)."""
        raise NotImplementedError

    def record_run_failure(self, record: dict) -> None:
        raise NotImplementedError

    def run_failures(self) -> pd.DataFrame:
        raise NotImplementedError

    # -- what the alert sensors read: one or two dates, never all history ------------------

    def run_failures_since(self, after: dt.datetime | None, limit: int = 500) -> pd.DataFrame:
        """Failures recorded at or after ``after`` (all if None), oldest first, at most
        ``limit``."""
        raise NotImplementedError

    def devices_recording(self, dates: Sequence[str]) -> pd.DataFrame:
        """Per device and local date of ``dates``: current recordings and the last one's
        time (device_id, local_date, recordings, last_recorded_at)."""
        raise NotImplementedError

    def charted_devices(self, date: str) -> set[str]:
        """Devices with a mood chart (a vibe_whisper_summary row) for ``date``."""
        raise NotImplementedError

    def failed_slots(self, date: str) -> pd.DataFrame:
        """The current recordings of ``date`` that failed a stage, with their error
        (device_id, time_block, error)."""
        raise NotImplementedError

    # -- the upload ledger of the queue sensor (SQL backends) ------------------------------

    def note_uploads(self, rows: Sequence[dict]) -> None:
        """Note notified uploads (file_path, device_id, local_date, size, sequencer): a
        notification seen again changes nothing; a later one of the same key (greater
        sequencer) makes the key pending again."""
        raise ResultStoreError("uploads: the upload queue needs the SQL result store "
                               "(WATCHME_DATABASE_URL, Supabase's PostgreSQL URL included)")

    def pending_uploads(self, limit: int) -> pd.DataFrame:
        """Uploads noted and not yet requested, oldest first."""
        raise NotImplementedError

    def mark_requested(self, file_paths: Sequence[str], run_key: str,
                       at: dt.datetime) -> None:
        raise NotImplementedError

    def noted_uploads(self, device_id: str, date: str) -> set[str]:
        """The files of a device-day in the ledger (pending or requested)."""
        raise NotImplementedError

    def settle_uploads(self, requested_before: dt.datetime, max_attempts: int = 3,
                       limit: int = 10_000) -> tuple[int, int, int]:
        """Forget uploads requested before the time whose files raw_audio has registered;
        make the others pending again (their run never registered them), up to
        ``max_attempts`` requests. Returns (registered, requested again, given up)."""
        raise NotImplementedError


RECORDING_COLUMNS = ["device_id", "local_date", "recordings", "last_recorded_at"]
FACT_COLUMNS = ["recorded_at", "file_size", "uploaded_at", "duration_s", "sample_rate", "decodes",
                "speech_segments", "superseded", "updated_at"]
DONE = ("completed", "superseded")


def _check_status(stage: str, status: str) -> None:
    if stage not in STATUS_NAMES or status not in schema.STATUSES:
        raise ValueError(f"unknown stage/status {stage!r}/{status!r}")


class SqlResultStore(ResultStore):
    """SQLite or PostgreSQL by SQLAlchemy URL (``postgresql+psycopg://…`` for PostgreSQL)."""

    database_url: str

    _engine: sa.Engine | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = sa.make_url(self.database_url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 30} if url.get_backend_name() == "sqlite" else {}
            engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            migrate(engine)  # created (or brought up to date) on first use
            self._engine = engine
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
        stmt = _insert(conn.dialect.name, table)
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
        date_col = table.c.local_date if table_name == RAW_AUDIO.table else table.c.date
        order = [table.c[k] for k in ("time_block", "recorded_at", "file_path") if k in table.c]
        query = sa.select(table).where(table.c.device_id == device_id, date_col == date)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*order)).mappings().all()
        return typed_frame(table_name, rows)

    def record_run_failure(self, record: dict) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, schema.run_failures, [record])

    def run_failures(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(schema.run_failures), conn)

    def run_failures_since(self, after: dt.datetime | None, limit: int = 500) -> pd.DataFrame:
        t = schema.run_failures
        query = sa.select(t).order_by(t.c.failed_at, t.c.run_id).limit(limit)
        if after is not None:
            query = query.where(t.c.failed_at >= after)
        with self.engine.connect() as conn:
            return typed_frame("run_failures", conn.execute(query).mappings().all())

    def devices_recording(self, dates: Sequence[str]) -> pd.DataFrame:
        t = schema.audio_files
        query = (sa.select(t.c.device_id, t.c.local_date,
                           sa.func.count().label("recordings"),
                           sa.func.max(t.c.recorded_at).label("last_recorded_at"))
                 .where(t.c.local_date.in_(list(dates)), t.c.superseded.is_(False))
                 .group_by(t.c.device_id, t.c.local_date))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        # max() of a timestamp comes back as text on SQLite: parse it the same everywhere.
        return pd.DataFrame(
            [(d, day, n, _aware(last)) for d, day, n, last in rows], columns=RECORDING_COLUMNS)

    def charted_devices(self, date: str) -> set[str]:
        t = schema.vibe_whisper_summary
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(t.c.device_id).where(t.c.date == date)).scalars())

    def note_uploads(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        t, now = schema.uploads, _now()
        # One row per key, the latest notification of this batch.
        latest: dict[str, dict] = {}
        for r in rows:
            if r["file_path"] not in latest or r["sequencer"] > latest[r["file_path"]][
                    "sequencer"]:
                latest[r["file_path"]] = r
        stmt = _insert(self.engine.dialect.name, t).values(
            [{**r, "noted_at": now} for r in latest.values()])
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.file_path],
            set_={"size": stmt.excluded.size, "sequencer": stmt.excluded.sequencer,
                  "noted_at": stmt.excluded.noted_at, "requested_at": None, "run_key": None,
                  "attempts": 0},
            where=stmt.excluded.sequencer > t.c.sequencer,
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def pending_uploads(self, limit: int) -> pd.DataFrame:
        t = schema.uploads
        query = (sa.select(t).where(t.c.requested_at.is_(None))
                 .order_by(t.c.noted_at, t.c.file_path).limit(limit))
        with self.engine.connect() as conn:
            return typed_frame("uploads", conn.execute(query).mappings().all())

    def mark_requested(self, file_paths: Sequence[str], run_key: str,
                       at: dt.datetime) -> None:
        t = schema.uploads
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.file_path.in_(list(file_paths)))
                         .values(requested_at=at, run_key=run_key,
                                 attempts=t.c.attempts + 1))

    def noted_uploads(self, device_id: str, date: str) -> set[str]:
        u = schema.uploads
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(u.c.file_path).where(
                u.c.device_id == device_id, u.c.local_date == date)).scalars())

    def settle_uploads(self, requested_before: dt.datetime, max_attempts: int = 3,
                       limit: int = 10_000) -> tuple[int, int, int]:
        u, a = schema.uploads, schema.audio_files
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(u.c.file_path, u.c.attempts, a.c.file_path.label("registered"))
                .select_from(u.outerjoin(a, sa.and_(a.c.device_id == u.c.device_id,
                                                    a.c.file_path == u.c.file_path)))
                .where(u.c.requested_at < requested_before).limit(limit)).all()
            done = [r.file_path for r in old if r.registered is not None]
            given_up = [r.file_path for r in old
                        if r.registered is None and r.attempts >= max_attempts]
            again = [r.file_path for r in old
                     if r.registered is None and r.attempts < max_attempts]
            if done or given_up:
                conn.execute(sa.delete(u).where(u.c.file_path.in_(done + given_up)))
            if again:
                conn.execute(sa.update(u).where(u.c.file_path.in_(again))
                             .values(requested_at=None, run_key=None))
        return len(done), len(again), len(given_up)

    def failed_slots(self, date: str) -> pd.DataFrame:
        t = schema.audio_files
        failed = sa.or_(*[t.c[f"{s}_status"] == "failed" for s in STATUS_NAMES],
                        t.c.decodes.is_(False))
        query = (sa.select(t.c.device_id, t.c.time_block, t.c.error)
                 .where(t.c.local_date == date, t.c.superseded.is_(False), failed))
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).all(),
                                columns=["device_id", "time_block", "error"])

    # -- audio_files ---------------------------------------------------------------------------

    def register_recordings(self, rows: Sequence[dict]) -> None:
        now = _now()
        with self.engine.begin() as conn:
            self._upsert(conn, schema.audio_files, [{**r, "updated_at": now} for r in rows],
                         update=FACT_COLUMNS)

    def set_status(self, device_id: str, file_paths: Iterable[str], stage: str,
                   status: str, error: str | None = None) -> None:
        _check_status(stage, status)
        paths = list(file_paths)
        if not paths:
            return
        t = schema.audio_files
        values: dict[str, Any] = {f"{stage}_status": status, "updated_at": _now()}
        if status == "failed":
            values["error"] = error
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.device_id == device_id, t.c.file_path.in_(paths))
                .values(**values)
            )
            if status == "completed":
                # A slot that now completes every stage has no error left to show.
                done = sa.and_(*[t.c[f"{s}_status"].in_(DONE) for s in STATUS_NAMES])
                conn.execute(
                    sa.update(t)
                    .where(t.c.device_id == device_id, t.c.file_path.in_(paths), done)
                    .values(error=None)
                )


class SupabaseResultStore(ResultStore):
    """Supabase's REST API (PostgREST) with the ``supabase`` client: upserts with
    ``on_conflict`` on the primary key. Not atomic across requests, unlike the SQL backends."""

    url: str
    key: str  # give it as dg.EnvVar("SUPABASE_KEY"): never in config, logs or metadata

    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        if self._client is None:
            from supabase import create_client

            self._client = create_client(self.url, self.key)
        return self._client

    def describe(self) -> str:
        return f"supabase REST {self.url}"

    def _run(self, table_name: str, request) -> Any:
        from postgrest.exceptions import APIError

        try:
            return request.execute()
        except APIError as exc:
            raise ResultStoreError(
                f"{table_name}: PostgREST error {exc.code}: {exc.message}"
                + (f" ({exc.hint})" if exc.hint else "")
            ) from None

    @staticmethod
    def _json(rows: Sequence[dict]) -> list[dict]:
        def encode(v: Any) -> Any:
            return v.isoformat() if isinstance(v, dt.datetime) else v

        return [{k: encode(v) for k, v in clean_value(dict(r)).items()} for r in rows]

    def _upsert_rest(self, table_name: str, rows: Sequence[dict]) -> None:
        if not rows:
            return
        keys = ",".join(c.name for c in schema.TABLES[table_name].primary_key.columns)
        self._run(table_name, self.client.table(table_name).upsert(
            self._json(rows), on_conflict=keys, returning="minimal"))

    def replace_partition(self, table_name: str, device_id: str, date: str,
                          rows: Sequence[dict], only_keys: bool = False) -> None:
        table = schema.TABLES[table_name]
        if not only_keys and "time_block" in table.c:
            keep = ",".join(f'"{r["time_block"]}"' for r in rows)
            self._run(table_name, self.client.table(table_name).delete()
                      .eq("device_id", device_id).eq("date", date)
                      .filter("time_block", "not.in", f"({keep})"))
        self._upsert_rest(table_name, rows)

    def read(self, table_name: str, device_id: str, date: str) -> pd.DataFrame:
        table = schema.TABLES[table_name]
        date_col = "local_date" if table_name == RAW_AUDIO.table else "date"
        request = (self.client.table(table_name).select("*")
                   .eq("device_id", device_id).eq(date_col, date))
        for col in ("time_block", "recorded_at", "file_path"):
            if col in table.c:
                request = request.order(col)
        return typed_frame(table_name, self._run(table_name, request).data)

    def register_recordings(self, rows: Sequence[dict]) -> None:
        now = _now()
        # Only keys and file facts are sent: merge-duplicates leaves the statuses alone.
        self._upsert_rest(RAW_AUDIO.table, [
            {k: v for k, v in {**r, "updated_at": now}.items()
             if k in (*FACT_COLUMNS, "device_id", "file_path", "local_date", "time_block")}
            for r in rows
        ])

    def set_status(self, device_id: str, file_paths: Iterable[str], stage: str,
                   status: str, error: str | None = None) -> None:
        _check_status(stage, status)
        paths = list(file_paths)
        if not paths:
            return
        values: dict[str, Any] = {f"{stage}_status": status, "updated_at": _now().isoformat()}
        if status == "failed":
            values["error"] = error
        table = self.client.table(RAW_AUDIO.table)
        self._run(RAW_AUDIO.table, table.update(values).eq("device_id", device_id)
                  .in_("file_path", paths))
        if status == "completed":
            request = table.update({"error": None}).eq("device_id", device_id).in_(
                "file_path", paths)
            for s in STATUS_NAMES:
                request = request.in_(f"{s}_status", list(DONE))
            self._run(RAW_AUDIO.table, request)


    def record_run_failure(self, record: dict) -> None:
        self._upsert_rest("run_failures", [record])

    def run_failures(self) -> pd.DataFrame:
        data = self._run("run_failures", self.client.table("run_failures").select("*")).data
        return pd.DataFrame(data, columns=[c.name for c in schema.run_failures.columns])

    def _select_all(self, table_name: str, columns: str, build) -> list[dict]:
        """Every row a filtered select gives, page by page (PostgREST caps a response)."""
        rows: list[dict] = []
        while True:
            page = self._run(table_name, build(self.client.table(table_name).select(columns))
                             .range(len(rows), len(rows) + REST_PAGE - 1)).data
            rows.extend(page)
            if len(page) < REST_PAGE:
                return rows

    def run_failures_since(self, after: dt.datetime | None, limit: int = 500) -> pd.DataFrame:
        request = self.client.table("run_failures").select("*").order("failed_at").limit(limit)
        if after is not None:
            request = request.gte("failed_at", after.isoformat())
        return typed_frame("run_failures", self._run("run_failures", request).data)

    def devices_recording(self, dates: Sequence[str]) -> pd.DataFrame:
        rows = self._select_all(RAW_AUDIO.table, "device_id,local_date,recorded_at",
                                lambda r: r.in_("local_date", list(dates))
                                .eq("superseded", False))
        frame = pd.DataFrame(rows, columns=["device_id", "local_date", "recorded_at"])
        if frame.empty:
            return pd.DataFrame(columns=RECORDING_COLUMNS)
        frame["recorded_at"] = pd.to_datetime(frame.recorded_at, utc=True)
        grouped = frame.groupby(["device_id", "local_date"]).recorded_at.agg(["count", "max"])
        return pd.DataFrame([(d, day, int(n), last.to_pydatetime())
                             for (d, day), (n, last) in grouped.iterrows()],
                            columns=RECORDING_COLUMNS)

    def charted_devices(self, date: str) -> set[str]:
        rows = self._select_all("vibe_whisper_summary", "device_id", lambda r: r.eq("date", date))
        return {r["device_id"] for r in rows}

    def failed_slots(self, date: str) -> pd.DataFrame:
        failed = ",".join([f"{s}_status.eq.failed" for s in STATUS_NAMES] + ["decodes.eq.false"])
        rows = self._select_all(RAW_AUDIO.table, "device_id,time_block,error",
                                lambda r: r.eq("local_date", date).eq("superseded", False)
                                .or_(failed))
        return pd.DataFrame(rows, columns=["device_id", "time_block", "error"])


def result_store_for(deployment: Deployment) -> ResultStore:
    """The SQL store by URL, or Supabase REST (its key as EnvVar) where that is configured."""
    if deployment.result_backend == "supabase":
        return SupabaseResultStore(url=str(deployment.supabase_url),
                                   key=dg.EnvVar("SUPABASE_KEY"))
    return SqlResultStore(database_url=str(deployment.database_url))
