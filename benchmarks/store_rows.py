"""Rows written per second for device-days on SQLite and on a throwaway local PostgreSQL.

    python benchmarks/store_rows.py [DAYS]
"""

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg import PostgresCluster  # noqa: E402

from watchme_pipeline.resources import SqlResultStore  # noqa: E402
from watchme_pipeline.slots import SLOTS  # noqa: E402
from watchme_pipeline.stages.raw_audio import status_names  # noqa: E402

NOW = dt.datetime(2025, 7, 18, tzinfo=dt.UTC)


def write_day(store: SqlResultStore, device: str, date: str) -> int:
    """One device-day as the graph writes it; returns the rows written."""
    base = {"device_id": device, "date": date, "processed_at": NOW}
    recordings = [{"device_id": device, "recorded_at": NOW + dt.timedelta(minutes=30 * i),
                   "file_path": f"files/{device}/{date}/{s}/audio.wav", "local_date": date,
                   "time_block": s, "file_size": 1_920_044, "duration_s": 60.0,
                   "sample_rate": 16000, "decodes": True} for i, s in enumerate(SLOTS)]
    store.register_recordings(recordings)
    at = [r["file_path"] for r in recordings]
    for stage in status_names():
        store.set_status(device, at, stage, "processing")
    events = [{"time": round(w * 10.24, 2), "events": [{"label": "Speech", "score": 0.9}] * 5}
              for w in range(6)]
    tables = {
        "vibe_whisper": [{**base, "time_block": s, "transcription": "今日はいい天気ですね",
                          "model": "base"} for s in SLOTS],
        "behavior_yamnet": [{**base, "time_block": s, "events": events,
                             "top_events": events[0]["events"], "model": "ast"} for s in SLOTS],
        "emotion_superb": [{**base, "time_block": s, "neutral": 0.4, "happy": 0.3, "angry": 0.2,
                            "sad": 0.1, "voiced_seconds": 20.0, "model": "w2v"} for s in SLOTS],
        "behavior_summary": [{**base, "summary_ranking": [], "time_blocks": {}}],
        "vibe_whisper_summary": [{**base, "vibe_scores": [0] * 48, "average_score": 0.0}],
    }
    for name, rows in tables.items():
        store.replace_partition(name, device, date, rows)
    for stage in status_names():
        store.set_status(device, at, stage, "completed")
    return len(recordings) * 7 + sum(len(r) for r in tables.values())


def measure(store: SqlResultStore, days: int) -> tuple[int, float]:
    write_day(store, "warmup", "2025-07-01")  # schema, connections
    t0 = time.perf_counter()
    rows = sum(write_day(store, f"dev-{d % 5}", f"2025-07-{1 + d // 5:02d}") for d in range(days))
    return rows, time.perf_counter() - t0


def main(days: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows, s = measure(SqlResultStore(database_url=f"sqlite:///{tmp}/bench.db"), days)
        print(f"sqlite     {days} device-days, {rows} rows (incl. status updates) in {s:.2f}s: "
              f"{rows / s:,.0f} rows/s, {s / days * 1000:.0f} ms per device-day")
    cluster = PostgresCluster().start()
    try:
        rows, s = measure(SqlResultStore(database_url=cluster.url()), days)
        print(f"postgresql {days} device-days, {rows} rows (incl. status updates) in {s:.2f}s: "
              f"{rows / s:,.0f} rows/s, {s / days * 1000:.0f} ms per device-day")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
