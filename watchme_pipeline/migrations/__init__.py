"""Versioned schema migrations.

PostgreSQL / Supabase: the numbered ``NNNN_name.sql`` files beside this module, applied in order
under an advisory lock and recorded in ``schema_migrations``; a file already recorded is not
applied again (and each file is idempotent anyway). SQLite, the embedded default, is created
from the same tables' SQLAlchemy definitions (``watchme_pipeline.schema``); a test checks that
both describe the same columns and keys.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from watchme_pipeline import schema

MIGRATIONS_DIR = Path(__file__).parent
_LOCK_ID = 0x5741_5443  # "WATC": serialises concurrent migrators on one database


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(engine: sa.Engine) -> list[str]:
    """Bring the database up to date; return what was applied (empty if nothing was)."""
    if engine.dialect.name != "postgresql":
        existing = set(sa.inspect(engine).get_table_names())
        schema.metadata.create_all(engine)
        return [f"created table {t}" for t in schema.TABLES if t not in existing]
    applied: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        done = set(conn.execute(sa.text("SELECT version FROM schema_migrations")).scalars())
        for path in migration_files():
            if path.stem in done:
                continue
            conn.exec_driver_sql(path.read_text(encoding="utf-8"))
            conn.execute(sa.text("INSERT INTO schema_migrations (version) VALUES (:v)"),
                         {"v": path.stem})
            applied.append(f"applied {path.name}")
    return applied
