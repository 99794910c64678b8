"""One store test-suite, run on SQLite and on a real PostgreSQL server."""

import datetime as dt
import multiprocessing as mp

import pandas as pd
import pytest
import sqlalchemy as sa

from watchme_pipeline import schema
from watchme_pipeline.migrations import migrate, migration_files
from watchme_pipeline.resources import SqlResultStore
from watchme_pipeline.slots import SLOTS

T0 = dt.datetime(2025, 7, 18, 0, 0, tzinfo=dt.UTC)


def text_rows(device: str, n: int = 48, text: str = "t") -> list[dict]:
    return [{"device_id": device, "date": "2025-07-18", "time_block": SLOTS[i],
             "transcription": f"{text}{i}", "model": "m", "processed_at": T0} for i in range(n)]


def test_migrations_are_idempotent_and_match_the_schema(sql_url):
    engine = sa.create_engine(sql_url)
    first = migrate(engine)
    assert migrate(engine) == []  # twice is harmless
    assert first  # the first time it did something
    inspector = sa.inspect(engine)
    for name, table in schema.tables().items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
        assert inspector.get_pk_constraint(name)["constrained_columns"] == [
            c.name for c in table.primary_key.columns], name
    assert first == [f"applied {p.name}" for p in migration_files()]  # a new stage's too
    assert first[:5] == ["applied 0001_initial.sql", "applied 0002_run_failures.sql",
                         "applied 0003_one_row_per_file.sql",
                         "applied 0004_makers_and_current.sql",
                         "applied 0005_alerts_and_uploads.sql"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select version from schema_migrations order by 1"
                                    ).scalars().all() == [p.stem for p in migration_files()]
    for table in (schema.table("audio_files"), schema.table("vibe_whisper_summary"),
                  schema.run_failures):
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            kind = conn.exec_driver_sql(
                "select data_type from information_schema.columns where table_name = "
                "'behavior_yamnet' and column_name = 'events'").scalar()
            assert kind == "jsonb"


def test_upserts_are_idempotent_and_replace_the_day(sql_url):
    store = SqlResultStore(database_url=sql_url)
    for _ in range(3):
        store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", text_rows("dev-1"))
    df = store.read("vibe_whisper", "dev-1", "2025-07-18")
    assert len(df) == 48 and df.transcription.iloc[5] == "t5"
    store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", text_rows("dev-1", 10, "u"))
    df = store.read("vibe_whisper", "dev-1", "2025-07-18")
    assert len(df) == 10 and list(df.transcription) == [f"u{i}" for i in range(10)]
    # only_keys: an incremental write touches its slots and leaves the others.
    store.replace_partition("vibe_whisper", "dev-1", "2025-07-18",
                            text_rows("dev-1", 1, "v"), only_keys=True)
    df = store.read("vibe_whisper", "dev-1", "2025-07-18")
    assert len(df) == 10 and df.transcription.iloc[0] == "v0" and df.transcription.iloc[1] == "u1"


def recordings(n: int = 3) -> list[dict]:
    return [{"device_id": "dev-1", "recorded_at": T0 + dt.timedelta(minutes=30 * i),
             "file_path": f"files/dev-1/2025-07-18/{i // 2:02d}-{i % 2 * 30:02d}/audio.wav",
             "local_date": "2025-07-18", "time_block": f"{i // 2:02d}-{i % 2 * 30:02d}",
             "file_size": 100, "duration_s": 60.0, "sample_rate": 16000, "decodes": True}
            for i in range(n)]


def test_status_transitions_and_retry(sql_url):
    store = SqlResultStore(database_url=sql_url)
    store.register_recordings(recordings())
    df = store.read("audio_files", "dev-1", "2025-07-18")
    assert list(df.transcriptions_status) == ["pending"] * 3
    assert df.recorded_at.iloc[0] == T0  # timestamptz round-trips as an aware UTC time
    at = list(df.file_path)  # audio_files is keyed by file
    store.set_status("dev-1", at, "transcriptions", "processing")
    store.set_status("dev-1", at[:2], "transcriptions", "completed")
    store.set_status("dev-1", at[2:], "transcriptions", "failed", "x.wav: broken")
    df = store.read("audio_files", "dev-1", "2025-07-18")
    assert list(df.transcriptions_status) == ["completed", "completed", "failed"]
    assert list(df.error.fillna("")) == ["", "", "x.wav: broken"]
    store.register_recordings(recordings())  # found again: statuses are kept
    assert list(store.read("audio_files", "dev-1", "2025-07-18").transcriptions_status) == [
        "completed", "completed", "failed"]
    for stage in ("transcriptions", "behavior_features", "emotion_features"):
        store.set_status("dev-1", at[2:], stage, "completed")  # the retry succeeds
    last = store.read("audio_files", "dev-1", "2025-07-18").iloc[2]
    assert last.transcriptions_status == "completed" and last.error is None
    with pytest.raises(ValueError, match="unknown stage/status"):
        store.set_status("dev-1", at, "transcriptions", "done")


def test_a_failed_write_leaves_the_old_rows(sql_url):
    store = SqlResultStore(database_url=sql_url)
    store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", text_rows("dev-1"))
    bad = text_rows("dev-1", text="new")
    bad[30]["time_block"] = None  # a NOT NULL key: the database refuses row 31 of 48
    with pytest.raises(sa.exc.IntegrityError):
        store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", bad)
    df = store.read("vibe_whisper", "dev-1", "2025-07-18")
    assert len(df) == 48 and set(df.transcription.str[0]) == {"t"}  # all old, none new


def test_nan_and_infinity_become_null(sql_url):
    store = SqlResultStore(database_url=sql_url)
    store.replace_partition("emotion_superb", "dev-1", "2025-07-18", [
        {"device_id": "dev-1", "date": "2025-07-18", "time_block": "09-00",
         "neutral": float("nan"), "happy": float("inf"), "angry": 0.5, "sad": -float("inf"),
         "voiced_seconds": 1.0, "model": "m", "processed_at": T0}])
    store.replace_partition("behavior_yamnet", "dev-1", "2025-07-18", [
        {"device_id": "dev-1", "date": "2025-07-18", "time_block": "09-00",
         "events": [{"time": 0.0, "events": [{"label": "Speech", "score": float("nan")}]}],
         "top_events": [], "model": "m", "processed_at": T0}])
    row = store.read("emotion_superb", "dev-1", "2025-07-18").iloc[0]
    assert pd.isna(row.neutral) and pd.isna(row.happy) and pd.isna(row.sad) and row.angry == 0.5
    events = store.read("behavior_yamnet", "dev-1", "2025-07-18").iloc[0].events
    assert events == [{"time": 0.0, "events": [{"label": "Speech", "score": None}]}]


def test_japanese_round_trips_exactly(sql_url):
    store = SqlResultStore(database_url=sql_url)
    text = "今日はとても良い天気ですね。ありがとう😊 「発話なし」"
    rows = text_rows("dev-1", 1)
    rows[0]["transcription"] = text
    store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", rows)
    assert store.read("vibe_whisper", "dev-1", "2025-07-18").transcription.iloc[0] == text


def _writer(url: str, device: str, rounds: int) -> None:
    store = SqlResultStore(database_url=url)
    for r in range(rounds):
        store.replace_partition("vibe_whisper", device, "2025-07-18",
                                text_rows(device, text=f"{device}-{r}-"))


def test_two_processes_write_different_partitions_at_once(sql_url):
    assert SqlResultStore(database_url=sql_url).engine  # schema first, as a first run would
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(sql_url, d, 15)) for d in ("dev-a", "dev-b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = SqlResultStore(database_url=sql_url)
    for device in ("dev-a", "dev-b"):
        df = store.read("vibe_whisper", device, "2025-07-18")
        assert len(df) == 48 and (df.transcription.str.startswith(f"{device}-14-")).all()


def test_migrate_command_says_what_it_did(postgres):
    import subprocess
    import sys

    url = postgres.create_database("migrate_cli")
    cmd = [sys.executable, "-m", "watchme_pipeline", "migrate", "--url", url]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    assert "applied 0001_initial.sql" in first.stdout
    assert f"{len(migration_files())} change(s) applied" in first.stdout
    assert first.stdout.startswith("migrating postgresql")
    second = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    assert second.stdout.strip().endswith("up to date")


def test_whole_day_on_postgresql(postgres, resources, instance, sample_day):
    from conftest import DATE, DEVICE, materialize_day

    store = SqlResultStore(database_url=postgres.create_database("whole_day"))
    assert materialize_day({**resources, "result_store": store}, instance).success
    files = store.read("audio_files", DEVICE, DATE)
    assert len(files) == 38 and (files.transcriptions_status == "completed").sum() == 37
    assert len(store.read("behavior_yamnet", DEVICE, DATE)) == 37
    scores = store.read("vibe_whisper_summary", DEVICE, DATE).iloc[0].vibe_scores
    assert len(scores) == 48 and sum(s is None for s in scores) == 11


def test_the_alert_reads_cover_one_date_across_devices(sql_url):
    """What the alert sensors read, on both backends: devices that recorded on a date (current
    recordings only), charts of a date, failed slots, failures since a time."""
    store = SqlResultStore(database_url=sql_url)
    for device, date, hour in [("a", "2025-07-18", 9), ("a", "2025-07-18", 21),
                               ("b", "2025-07-18", 10), ("b", "2025-07-19", 1),
                               ("c", "2025-07-17", 9)]:
        store.register_recordings([{"device_id": device, "local_date": date,
                                    "file_path": f"files/{device}/{date}/{hour:02d}-00/audio.wav",
                                    "recorded_at": T0 + dt.timedelta(days=int(date[-2:]) - 18,
                                                                     hours=hour),
                                    "time_block": f"{hour:02d}-00", "decodes": hour != 21}])
    store.register_recordings([{"device_id": "b", "local_date": "2025-07-18",
                                "file_path": "files/b/2025-07-18/23-00/old.wav",
                                "recorded_at": T0 + dt.timedelta(hours=23), "time_block": "23-00",
                                "superseded": True}])
    store.set_status("a", ["files/a/2025-07-18/21-00/audio.wav"], "transcriptions", "failed",
                     "x.wav: broken")
    frame = store.devices_recording(["2025-07-18", "2025-07-19"]).sort_values(
        ["device_id", "local_date"])
    assert frame.values.tolist() == [
        ["a", "2025-07-18", 2, T0 + dt.timedelta(hours=21)],
        ["b", "2025-07-18", 1, T0 + dt.timedelta(hours=10)],  # the superseded file left out
        ["b", "2025-07-19", 1, T0 + dt.timedelta(days=1, hours=1)]]
    store.replace_partition("vibe_whisper_summary", "a", "2025-07-18",
                            [{"device_id": "a", "date": "2025-07-18", "vibe_scores": [0] * 48}])
    charted = store.devices_with_rows
    assert charted("vibe_whisper_summary", "2025-07-18") == {"a"} and charted(
        "vibe_whisper_summary", "2025-07-19") == set()
    failed = store.failed_slots("2025-07-18")
    assert failed.values.tolist() == [["a", "21-00", "x.wav: broken"]]
    for i in range(3):
        store.record_run_failure({"run_id": f"r{i}", "failed_at": T0 + dt.timedelta(minutes=i),
                                  "message": "m"})
    since = store.run_failures_since(T0 + dt.timedelta(minutes=1))
    assert since.run_id.tolist() == ["r1", "r2"]
    assert since.failed_at.tolist() == [T0 + dt.timedelta(minutes=m) for m in (1, 2)]
    assert store.run_failures_since(None, limit=1).run_id.tolist() == ["r0"]
