"""Versioned schema migrations, the one written form of the schema.

The numbered ``NNNN_name.sql`` files beside this module are applied in order (a new stage
adds one: docs/architecture.md, "Add a stage"), on PostgreSQL /
Supabase and on SQLite alike (they are plain SQL both accept), each in one transaction with its
row in ``schema_migrations``; a file already recorded is not applied again. Concurrent
migrators wait: PostgreSQL takes an advisory lock, SQLite ``BEGIN IMMEDIATE``. The SQLAlchemy
tables in ``watchme_pipeline.schema`` are what the code queries with; a test proves both
describe the same columns and keys on both backends.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).parent
_LOCK_ID = 0x5741_5443  # "WATC": serialises concurrent migrators on one PostgreSQL database
_LEDGER = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
           " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP)")
# Before 0003, SQLite databases were created from the SQLAlchemy tables, without a ledger:
# such a database is at 0002.
_BEFORE_LEDGER = ("0001_initial", "0002_run_failures")


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def statements(sql: str) -> list[str]:
    """A migration file's statements (sqlite3 runs one at a time). Our files keep ';' out of
    comments and literals, so splitting on it is exact."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(engine: sa.Engine, files: list[Path] | None = None) -> list[str]:
    """Bring the database up to date with ``files`` (default: ours, in order); return what
    was applied (empty if nothing was)."""
    files = migration_files() if files is None else files
    if engine.dialect.name == "postgresql":
        return _migrate_postgresql(engine, files)
    return _migrate_sqlite(engine, files)


def _migrate_postgresql(engine: sa.Engine, files: list[Path]) -> list[str]:
    applied: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        conn.exec_driver_sql(_LEDGER)
        done = set(conn.execute(sa.text("SELECT version FROM schema_migrations")).scalars())
        for path in files:
            if path.stem in done:
                continue
            conn.exec_driver_sql(path.read_text(encoding="utf-8"))
            conn.execute(sa.text("INSERT INTO schema_migrations (version) VALUES (:v)"),
                         {"v": path.stem})
            applied.append(f"applied {path.name}")
    return applied


def _migrate_sqlite(engine: sa.Engine, files: list[Path]) -> list[str]:
    # pysqlite does not open transactions for DDL by itself: drive them by hand, so a file is
    # applied whole or not at all.
    applied: list[str] = []
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        mode, conn.isolation_level = conn.isolation_level, None
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in
                      cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            cur.execute(_LEDGER)
            if "schema_migrations" not in tables and "audio_files" in tables:
                cur.executemany("INSERT INTO schema_migrations (version) VALUES (?)",
                                [(v,) for v in _BEFORE_LEDGER])
            done = {r[0] for r in cur.execute("SELECT version FROM schema_migrations")}
            for path in files:
                if path.stem in done:
                    continue
                for statement in statements(path.read_text(encoding="utf-8")):
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_migrations (version) VALUES (?)", (path.stem,))
                applied.append(f"applied {path.name}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            conn.isolation_level = mode
    finally:
        raw.close()
    return applied
