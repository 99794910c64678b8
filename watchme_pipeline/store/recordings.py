"""The recording ledger (raw_audio's ``audio_files``): which files a device-day has, which is
current in each slot, and each stage's status per file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd

from watchme_pipeline.store.rows import StageRows
from watchme_pipeline.store.types import aware

RECORDING_COLUMNS = ["device_id", "local_date", "recordings", "last_recorded_at"]
FACT_COLUMNS = ["recorded_at", "file_size", "uploaded_at", "duration_s", "sample_rate", "decodes",
                "vad_segments", "superseded", "updated_at"]
DONE = ("completed", "superseded")


def _ledger():
    from watchme_pipeline.stages import raw_audio  # the ledger is raw_audio's table

    return raw_audio


class RecordingLedger(StageRows):
    def recordings(self, device_id: str, date: str) -> pd.DataFrame:
        """The day's recordings, one row per file, superseded ones included."""
        return self.read(_ledger().audio_files.name, device_id, date)

    def current_recordings(self, device_id: str, date: str) -> pd.DataFrame:
        """The current recording of each slot of the day: the one definition of "current"
        (raw_audio marks all but a slot's latest file ``superseded``)."""
        files = self.recordings(device_id, date)
        return files[~files.superseded].reset_index(drop=True)

    def register_recordings(self, rows: Sequence[dict]) -> None:
        """Insert newly found recordings as pending; refresh file facts, keep their statuses
        (only keys and facts are written)."""
        now = dt.datetime.now(dt.UTC)
        keys = ("device_id", "file_path", "local_date", "time_block")
        self.gateway().upsert(_ledger().audio_files, [
            {k: v for k, v in {**r, "updated_at": now}.items() if k in (*keys, *FACT_COLUMNS)}
            for r in rows], update=FACT_COLUMNS)

    def set_status(self, device_id: str, file_paths: Iterable[str], status_name: str,
                   status: str, error: str | None = None) -> None:
        """Set a stage's status (``audio_files.{status_name}_status``, ``Stage.status``) of
        these recordings (audio_files is keyed by file)."""
        ledger = _ledger()
        ledger.check_status(status_name, status)
        paths = list(file_paths)
        if not paths:
            return
        values: dict = {f"{status_name}_status": status, "updated_at": dt.datetime.now(dt.UTC)}
        if status == "failed":
            values["error"] = error
        where = [("eq", "device_id", device_id), ("in", "file_path", paths)]
        gateway = self.gateway()
        with gateway.atomic():
            gateway.update(ledger.audio_files, values, where)
            if status == "completed":
                # A slot that now completes every stage has no error left to show.
                gateway.update(ledger.audio_files, {"error": None}, [
                    *where, *[("in", f"{s}_status", DONE) for s in ledger.status_names()]])

    # -- audio retention: a bounded batch at a time, by the local_date index ---------------

    def expired_audio(self, before: str, limit: int) -> pd.DataFrame:
        """Recordings of days before ``before`` whose audio is still there and that every
        stage completed (device_id, file_path), at most ``limit``."""
        ledger = _ledger()
        rows = self.gateway().select(
            ledger.audio_files,
            [("lt", "local_date", before), ("eq", "audio_deleted_at", None),
             *[("eq", f"{s}_status", "completed") for s in ledger.status_names()]],
            columns=["device_id", "file_path"], order=["local_date", "device_id", "file_path"],
            limit=limit)
        return pd.DataFrame(rows, columns=["device_id", "file_path"])

    def mark_audio_deleted(self, device_id: str, file_paths: Sequence[str]) -> None:
        self.gateway().update(_ledger().audio_files,
                              {"audio_deleted_at": dt.datetime.now(dt.UTC)},
                              [("eq", "device_id", device_id), ("in", "file_path",
                                                                list(file_paths))])

    # -- what the alert sensors read: one or two dates, never all history ------------------

    def devices_recording(self, dates: Sequence[str]) -> pd.DataFrame:
        """Per device and local date of ``dates``: current recordings and the last one's
        time (device_id, local_date, recordings, last_recorded_at)."""
        rows = self.gateway().count_by(
            _ledger().audio_files, [("in", "local_date", list(dates)),
                                    ("eq", "superseded", False)],
            by=["device_id", "local_date"], latest="recorded_at")
        # max() of a timestamp comes back as text on SQLite: parse it the same everywhere.
        return pd.DataFrame([(d, day, int(n), aware(last)) for d, day, n, last in rows],
                            columns=RECORDING_COLUMNS)

    def failed_slots(self, date: str) -> pd.DataFrame:
        """The current recordings of ``date`` that failed a stage, with their error
        (device_id, time_block, error)."""
        ledger = _ledger()
        failed = ("any", [*[("eq", f"{s}_status", "failed") for s in ledger.status_names()],
                          ("eq", "decodes", False)])
        rows = self.gateway().select(
            ledger.audio_files, [("eq", "local_date", date), ("eq", "superseded", False),
                                 failed],
            columns=["device_id", "time_block", "error"], all_pages=True)
        return pd.DataFrame(rows, columns=["device_id", "time_block", "error"])
