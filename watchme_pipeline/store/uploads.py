"""The upload ledger of the queue sensor: uploads S3 announced, not yet registered by
raw_audio. SQL only: it needs a conditional upsert and a join PostgREST does not offer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from watchme_pipeline import schema
from watchme_pipeline.store.gateway import _insert
from watchme_pipeline.store.rows import StageRows
from watchme_pipeline.store.types import typed_frame

WHAT = "uploads: the upload queue"


class UploadLedger(StageRows):
    def note_uploads(self, rows: Sequence[dict]) -> None:
        """Note notified uploads (file_path, device_id, local_date, size, sequencer): a
        notification seen again changes nothing; a later one of the same key (greater
        sequencer) makes the key pending again."""
        gateway = self.sql_gateway(WHAT)
        if not rows:
            return
        t, now = schema.uploads, dt.datetime.now(dt.UTC)
        # One row per key, the latest notification of this batch.
        latest: dict[str, dict] = {}
        for r in rows:
            if r["file_path"] not in latest or r["sequencer"] > latest[r["file_path"]][
                    "sequencer"]:
                latest[r["file_path"]] = r
        stmt = _insert(gateway.engine.dialect.name, t).values(
            [{**r, "noted_at": now} for r in latest.values()])
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.file_path],
            set_={"size": stmt.excluded.size, "sequencer": stmt.excluded.sequencer,
                  "noted_at": stmt.excluded.noted_at, "requested_at": None, "run_key": None,
                  "attempts": 0},
            where=stmt.excluded.sequencer > t.c.sequencer,
        )
        with gateway.engine.begin() as conn:
            conn.execute(stmt)

    def pending_uploads(self, limit: int) -> pd.DataFrame:
        """Uploads noted and not yet requested, oldest first."""
        t = schema.uploads
        query = (sa.select(t).where(t.c.requested_at.is_(None))
                 .order_by(t.c.noted_at, t.c.file_path).limit(limit))
        with self.sql_gateway(WHAT).engine.connect() as conn:
            return typed_frame(t, conn.execute(query).mappings().all())

    def mark_requested(self, file_paths: Sequence[str], run_key: str,
                       at: dt.datetime) -> None:
        t = schema.uploads
        with self.sql_gateway(WHAT).engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.file_path.in_(list(file_paths)))
                         .values(requested_at=at, run_key=run_key,
                                 attempts=t.c.attempts + 1))

    def noted_uploads(self, device_id: str, date: str) -> set[str]:
        """The files of a device-day in the ledger (pending or requested)."""
        u = schema.uploads
        with self.sql_gateway(WHAT).engine.connect() as conn:
            return set(conn.execute(sa.select(u.c.file_path).where(
                u.c.device_id == device_id, u.c.local_date == date)).scalars())

    def settle_uploads(self, requested_before: dt.datetime, max_attempts: int = 3,
                       limit: int = 10_000) -> tuple[int, int, int]:
        """Forget uploads requested before the time whose files raw_audio has registered;
        make the others pending again (their run never registered them), up to
        ``max_attempts`` requests. Returns (registered, requested again, given up)."""
        from watchme_pipeline.stages.raw_audio import audio_files as a

        u = schema.uploads
        with self.sql_gateway(WHAT).engine.begin() as conn:
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
