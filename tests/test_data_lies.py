"""The two ways the data could quietly lie, on SQLite and on a real PostgreSQL server:
rows of an old model counted as done, and two recordings of one slot sharing one row."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import DATE, DEVICE, PARTITIONS, materialize_day

from watchme_pipeline.assets import build_assets
from watchme_pipeline.migrations import migrate, migration_files, statements
from watchme_pipeline.resources import LocalMoodScorer, ModelRegistry, SqlResultStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stage import Makers

STAGE_TABLES = ["vibe_whisper", "behavior_yamnet", "emotion_superb"]


def stable(df: pd.DataFrame) -> list[dict]:
    df = df.drop(columns=[c for c in ("processed_at", "updated_at") if c in df.columns])
    df = df.astype(object)
    return df.where(df.notna(), None).to_dict("records")


def stale_status(instance: dg.DagsterInstance, assets: list, key: str, partition: str) -> str:
    """The stale marker the UI shows: its GraphQL `staleStatus` comes from this resolver, built
    here as Dagster's own data-version tests build it (there is no public API for it)."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    resolver = get_stale_status_resolver(instance, assets)
    return resolver.get_status(dg.AssetKey(key), partition).value


@pytest.fixture
def sql_resources(resources, sql_url) -> dict:
    return {**resources, "result_store": SqlResultStore(database_url=sql_url)}


# On SQLite only: two whole-graph runs (two minutes a backend); the same rows and makers on
# PostgreSQL are proven by the language test below and tests/test_result_store.py.
@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
def test_a_model_change_shows_stale_and_one_run_redoes_exactly_its_rows(
        sql_resources, instance, sample_day, tiny_models):
    store = sql_resources["result_store"]
    old = sql_resources["model_registry"]  # faster-whisper: tiny-whisper+faster-whisper-int8
    first = materialize_day(sql_resources, instance)
    assert first.success
    before = {t: stable(store.read(t, DEVICE, DATE)) for t in STAGE_TABLES}
    files_before = stable(store.read("audio_files", DEVICE, DATE))
    assert {r["model"] for r in before["vibe_whisper"]} == {old.model_id("whisper")}
    partition = f"{DATE}|{DEVICE}"

    # The deployment switches Whisper's engine: another model id, so another code version.
    new = ModelRegistry(profile="tiny", cache_dir=str(tiny_models),
                        whisper_engine="openai-whisper")
    assert new.model_id("whisper") == "tiny-whisper" != old.model_id("whisper")
    assets = build_assets(PARTITIONS, Makers(new, PipelineSettings(), LocalMoodScorer().name()))
    assert stale_status(instance, assets, "transcripts", partition) == "STALE"
    assert stale_status(instance, assets, "event_scores", partition) == "FRESH"

    # One run of the graph, no `recompute`: every transcript is redone by the new model...
    second = materialize_day({**sql_resources, "model_registry": new}, instance, assets=assets)
    assert second.success
    meta = second.asset_materializations_for_node("transcripts")[0].metadata
    assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (37, 0)
    text = store.read("vibe_whisper", DEVICE, DATE)
    assert len(text) == 37 and set(text.model) == {"tiny-whisper"}
    # ...and nothing else changed: the other stages skipped every slot.
    for table in ("behavior_yamnet", "emotion_superb"):
        assert stable(store.read(table, DEVICE, DATE)) == before[table]
    for stage in ("event_scores", "emotion_scores"):
        meta = second.asset_materializations_for_node(stage)[0].metadata
        assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (0, 37)
    files = stable(store.read("audio_files", DEVICE, DATE))
    assert [{k: v for k, v in f.items()} for f in files] == files_before
    assert stale_status(instance, assets, "transcripts", partition) == "FRESH"


def test_two_uploads_of_one_time_are_both_kept_and_the_later_is_current(
        sql_resources, instance, sample_day, audio_store):
    store = sql_resources["result_store"]
    earlier = f"files/{DEVICE}/{DATE}/13-00/audio.wav"  # 13-00 has no recording in the sample
    later = f"files/{DEVICE}/{DATE}/13-00-00/audio.wav"  # the same time, newer layout
    audio_store.write(earlier, sample_day[f"files/{DEVICE}/{DATE}/09-00-06/audio.wav"])
    audio_store.write(later, sample_day[f"files/{DEVICE}/{DATE}/09-30/audio.wav"])  # silent
    assets = [a for a in build_assets(PARTITIONS, Makers(sql_resources["model_registry"],
                                                        PipelineSettings(), "local"))
              if a.key.to_user_string() in ("raw_audio", "transcripts")]
    result = materialize_day(sql_resources, instance, assets=assets)
    assert result.success
    files = store.read("audio_files", DEVICE, DATE)
    nine = files[files.time_block == "13-00"].set_index("file_path")
    assert set(nine.index) == {earlier, later}  # two rows, one recorded_at
    assert nine.recorded_at.nunique() == 1
    assert nine.loc[earlier, "transcriptions_status"] == "superseded"
    assert nine.loc[later, "transcriptions_status"] == "completed"
    meta = result.asset_materializations_for_node("raw_audio")[0].metadata
    assert meta["superseded_recordings"].value == [earlier]
    text = store.read("vibe_whisper", DEVICE, DATE).set_index("time_block")
    assert text.loc["13-00", "transcription"] == ""  # the later (silent) file's result


def test_a_run_with_another_language_redoes_every_slot_and_its_rows_say_so(
        sql_resources, instance, sample_bytes, audio_store):
    """Launchpad settings that change a stage's output reach its rows: defaults (ja), then
    `language: en` for one run (every transcript redone, rows say en, the metadata says the
    run's maker is not the code version), then defaults again (redone as ja). Another batch
    size changes nothing."""
    store = sql_resources["result_store"]
    keys = sorted(sample_bytes)[:4]  # four slots of the sample day: enough to count
    for key in keys:
        audio_store.write(key, sample_bytes[key])
    decodable = len(keys) - sum("12-30" in k for k in keys)
    assets = [a for a in build_assets(PARTITIONS, Makers(sql_resources["model_registry"],
                                                        PipelineSettings(), "local"))
              if a.key.to_user_string() in ("raw_audio", "transcripts")]

    def run(**settings):
        config = {"resources": {"settings": {"config": settings}}} if settings else None
        result = materialize_day(sql_resources, instance, assets=assets, run_config=config)
        assert result.success
        meta = result.asset_materializations_for_node("transcripts")[0].metadata
        rows = store.read("vibe_whisper", DEVICE, DATE)
        return meta, rows

    meta, ja = run()
    assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (decodable, 0)
    assert len(ja) == decodable >= 3 and ja.maker.str.contains("language='ja'").all()
    assert meta["maker_is_code_version"].value is True
    assert set(ja.maker) == {meta["maker"].value}
    meta, _ = run(whisper_batch_size=1, memory_mb=3000)  # must not change results: no redo
    assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (0, decodable)
    meta, en = run(language="en")
    assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (decodable, 0)
    assert len(en) == decodable and en.maker.str.contains("language='en'").all()
    assert meta["maker_is_code_version"].value is False
    assert set(en.model) == set(ja.model)  # the same model: only the maker differs
    meta, back = run()
    assert (meta["slots_processed"].value, meta["slots_skipped"].value) == (decodable, 0)
    assert set(back.maker) == set(ja.maker)
    files = store.current_recordings(DEVICE, DATE)
    assert set(files[files.decodes].transcriptions_status) == {"completed"}


def test_migration_0003_moves_a_database_with_rows(sql_url):
    """A database at 0002 with rows in it (two days of one device) comes through 0003 with
    every row, and then holds the second upload of one time that 0002 could not."""
    engine = sa.create_engine(sql_url)
    old = [p for p in migration_files() if p.stem < "0003"]
    with engine.begin() as conn:
        for path in old:
            for statement in statements(path.read_text()):
                conn.exec_driver_sql(statement)
        if engine.dialect.name == "postgresql":  # PostgreSQL kept the ledger; SQLite had none
            conn.exec_driver_sql("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                                 "applied_at timestamptz NOT NULL DEFAULT now())")
            for path in old:
                conn.exec_driver_sql(f"INSERT INTO schema_migrations VALUES ('{path.stem}')")
        t0 = dt.datetime(2025, 7, 18, 0, 0, tzinfo=dt.UTC)
        for i in range(6):
            conn.execute(sa.text(
                "INSERT INTO audio_files (device_id, recorded_at, file_path, local_date, "
                "time_block, decodes, transcriptions_status, error) VALUES "
                "(:d, :t, :p, :day, :slot, :ok, :st, :err)"),
                {"d": "dev-1", "t": t0 + dt.timedelta(hours=i * 12),
                 "p": f"files/dev-1/x/{i}/audio.wav", "day": f"2025-07-1{8 + i // 2}",
                 "slot": f"{(i * 12) % 24:02d}-00", "ok": i != 3,
                 "st": "failed" if i == 3 else "completed",
                 "err": "x.wav: broken" if i == 3 else None})
        conn.exec_driver_sql("INSERT INTO vibe_whisper_prompt (device_id, date, prompt) "
                             "VALUES ('dev-1', '2025-07-18', 'p')")
    assert migrate(engine) == ["applied 0003_one_row_per_file.sql",
                               "applied 0004_makers_and_current.sql",
                               "applied 0005_alerts_and_uploads.sql",
                               "applied 0006_personal_data.sql",
                               "applied 0007_speakers.sql"]
    store = SqlResultStore(database_url=sql_url)
    days = pd.concat([store.read("audio_files", "dev-1", f"2025-07-1{d}") for d in (8, 9)])
    assert len(days) == 4 and list(days.transcriptions_status) == ["completed"] * 3 + ["failed"]
    assert days.error.iloc[3] == "x.wav: broken" and days.vad_segments.isna().all()
    assert store.read("vibe_whisper_prompt", "dev-1", "2025-07-18").prompt.tolist() == ["p"]
    # Now a second file of the same time is a second row, not an overwrite.
    same = days.iloc[0]
    store.register_recordings([{"device_id": "dev-1", "recorded_at": same.recorded_at,
                                "file_path": same.file_path.replace("/audio", "-00/audio"),
                                "local_date": same.local_date, "time_block": same.time_block}])
    assert len(store.read("audio_files", "dev-1", same.local_date)) == 3
    assert migrate(engine) == []
