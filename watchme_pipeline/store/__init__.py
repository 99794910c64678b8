"""The result store: one Dagster resource, two backends chosen by configuration, every query
written once (``gateway.py``) and split by job: a stage's rows (``rows.py``), the recording
ledger (``recordings.py``), the upload ledger (``uploads.py``), the failure log
(``failures.py``) and what is kept of one person (``persons.py``).

* ``SqlResultStore``: SQLite (the embedded default) and PostgreSQL / Supabase's database by
  URL; tables are created or migrated on first use. Each write of one stage for one
  partition is one transaction.
* ``SupabaseResultStore``: Supabase's REST API (PostgREST) through the ``supabase`` client,
  for deployments that only have an API key (docs/operations.md, "Supabase").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr

from watchme_pipeline.settings import Deployment
from watchme_pipeline.store.failures import RunFailures
from watchme_pipeline.store.gateway import (
    RestGateway,
    ResultStoreError,
    SqlGateway,
    clean_value,
)
from watchme_pipeline.store.persons import PersonalData
from watchme_pipeline.store.recordings import RecordingLedger
from watchme_pipeline.store.types import typed_frame
from watchme_pipeline.store.uploads import UploadLedger


class ResultStore(RecordingLedger, UploadLedger, RunFailures, PersonalData,
                  dg.ConfigurableResource):
    """The tables of the brief and ours, written with upserts keyed on their primary keys."""

    def describe(self) -> str:
        raise NotImplementedError


class SqlResultStore(ResultStore):
    """SQLite or PostgreSQL by SQLAlchemy URL (``postgresql+psycopg://…`` for PostgreSQL)."""

    database_url: str

    _gateway: SqlGateway | None = PrivateAttr(default=None)

    @property
    def engine(self) -> sa.Engine:
        return self.gateway().engine

    def gateway(self) -> SqlGateway:
        if self._gateway is None:
            from watchme_pipeline.migrations import migrate

            url = sa.make_url(self.database_url)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 30} if url.get_backend_name() == "sqlite" else {}
            engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            migrate(engine)  # created (or brought up to date) on first use
            self._gateway = SqlGateway(engine)
        return self._gateway

    def describe(self) -> str:
        return sa.make_url(self.database_url).render_as_string(hide_password=True)


class SupabaseResultStore(ResultStore):
    """Supabase's REST API (PostgREST) with the ``supabase`` client: upserts with
    ``on_conflict`` on the primary key. Not atomic across requests, unlike the SQL backends."""

    url: str
    key: str  # give it as dg.EnvVar("SUPABASE_KEY"): never in config, logs or metadata

    _gateway: Any = PrivateAttr(default=None)

    def gateway(self) -> RestGateway:
        if self._gateway is None:
            from supabase import create_client

            self._gateway = RestGateway(create_client(self.url, self.key))
        return self._gateway

    def describe(self) -> str:
        return f"supabase REST {self.url}"


def result_store_for(deployment: Deployment) -> ResultStore:
    """The SQL store by URL, or Supabase REST (its key as EnvVar) where that is configured."""
    if deployment.result_backend == "supabase":
        return SupabaseResultStore(url=str(deployment.supabase_url),
                                   key=dg.EnvVar("SUPABASE_KEY"))
    return SqlResultStore(database_url=str(deployment.database_url))


__all__ = ["ResultStore", "ResultStoreError", "SqlResultStore", "SupabaseResultStore",
           "clean_value", "result_store_for", "typed_frame"]
