"""Export a device's data: per day one JSON file per table, rows as the tables hold them, the
chart, and (asked for) the audio; a README in the export says what each file is.

Layout: ``OUT/DEVICE/README.md`` and ``OUT/DEVICE/DATE/{table}.json`` (a list of rows, each
column by name; times in ISO 8601 UTC, JSON columns as JSON), ``DATE/mood_chart.png``, and
with ``--audio`` ``DATE/audio/{slot}/{file}`` as uploaded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchme_pipeline.slots import (
    KEY_PREFIX,
    enrollment_prefix,
    validate_date,
    validate_device_id,
)
from watchme_pipeline.stages.mood_chart import CHART_PREFIX
from watchme_pipeline.store.persons import EXPORT, dated_device_tables
from watchme_pipeline.store.rows import date_column

if TYPE_CHECKING:
    from watchme_pipeline.resources import AudioStore
    from watchme_pipeline.store import ResultStore


def jsonable(value: Any) -> Any:
    """A stored value as JSON: times in ISO 8601 (UTC), missing as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(
            dt.UTC).isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()  # numpy scalars
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def rows_as_json(frame) -> list[dict]:
    return [{column: jsonable(value) for column, value in row.items()}
            for row in frame.to_dict("records")]


@dataclass
class ExportReport:
    device_id: str
    out: Path
    days: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # per table
    charts: int = 0
    audio_files: int = 0
    enrollment_files: int = 0  # the wearer's voice recordings (speakers), with the audio


def what_table_holds(name: str) -> str:
    """The first sentence of the description of the stage that writes the table."""
    from watchme_pipeline.stages import STAGES

    for stage in STAGES:
        if name in {t.name for t in stage.tables}:
            return f"{stage.name}: " + stage.description.split(". ")[0].rstrip(".") + "."
    return f"the rows of table {name}."


def readme(device_id: str, tables: list[str], audio: bool) -> str:
    lines = [f"# The data WatchMe keeps of device {device_id}", "",
             "One folder per day (YYYY-MM-DD). In each, one JSON file per table: a list of rows "
             "as the table holds them, each column by name; times are ISO 8601 in UTC.", ""]
    lines += [f"- `{name}.json`: {what_table_holds(name)}" for name in tables]
    lines.append("- `mood_chart.png`: the day's mood chart")
    lines.append("- `audio/`: the recordings as uploaded; `../enrollment/`: the wearer's "
                 "enrollment recordings, if any" if audio else
                 "- Audio is not included (export with `--audio` to include it).")
    return "\n".join(lines) + "\n"


def export_device(device_id: str, out: Path, *, result_store: ResultStore,
                  audio_store: AudioStore, since: str | None = None, until: str | None = None,
                  audio: bool = False) -> ExportReport:
    """Write the device's data between two dates (inclusive; all when not given)."""
    device = validate_device_id(device_id)
    for date in (since, until):
        if date:
            validate_date(date)
    request_id, _ = result_store.open_request(device, EXPORT)
    root = Path(out) / device
    report = ExportReport(device, root)
    tables = dated_device_tables()
    by_day: dict[str, dict[str, list[dict]]] = {}
    for table in tables:
        frame = result_store.device_rows(table.name, device, since, until)
        column = date_column(table)
        for row in rows_as_json(frame):
            by_day.setdefault(row[column], {}).setdefault(table.name, []).append(row)
        report.rows[table.name] = len(frame)
    for date, per_table in sorted(by_day.items()):
        folder = root / date
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in per_table.items():
            (folder / f"{name}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1),
                                                 encoding="utf-8")
        for obj in audio_store.list_objects(f"{CHART_PREFIX}/{device}/{date}/"):
            (folder / Path(obj.key).name).write_bytes(audio_store.read(obj.key))
            report.charts += 1
        if audio:
            prefix = f"{KEY_PREFIX}/{device}/{date}/"
            for obj in audio_store.list_objects(prefix):
                target = folder / "audio" / obj.key.removeprefix(prefix)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(audio_store.read(obj.key))
                report.audio_files += 1
    report.days = len(by_day)
    root.mkdir(parents=True, exist_ok=True)
    if audio:  # the wearer's enrollment recordings belong to no day
        for obj in audio_store.list_objects(enrollment_prefix(device)):
            target = root / "enrollment" / Path(obj.key).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(audio_store.read(obj.key))
            report.enrollment_files += 1
    (root / "README.md").write_text(readme(device, [t.name for t in tables], audio),
                                    encoding="utf-8")
    result_store.add_request_counts(request_id, {**{f"table {k}": v
                                                    for k, v in report.rows.items()},
                                                 "charts": report.charts,
                                                 "audio files": report.audio_files,
                                                 "enrollment files": report.enrollment_files})
    result_store.finish_request(request_id)
    return report
