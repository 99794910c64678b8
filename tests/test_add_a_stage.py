"""The recipe of docs/architecture.md, "Add a stage", kept true: a stage defined here (words
per slot, no model: a module's worth), its migration and one more entry in the list of stages
give an asset in the graph and the job, rows in its table, and a stale partition after a
change of its code version."""

import dataclasses

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import DATE, DEVICE, PARTITIONS, materialize_day
from test_data_lies import stale_status

from watchme_pipeline import schema
from watchme_pipeline.assets import build_assets
from watchme_pipeline.definitions import JOB_NAME, build_definitions
from watchme_pipeline.migrations import migrate, migration_files
from watchme_pipeline.resources import LocalMoodScorer
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.stage import Makers, Stage
from watchme_pipeline.stages import STAGES
from watchme_pipeline.stages.transcripts import vibe_whisper

# -- what stages/words_per_slot.py would hold ------------------------------------------------
MIGRATION = """
CREATE TABLE words_per_slot (
    device_id text NOT NULL, date text NOT NULL, time_block text NOT NULL,
    words integer, model text, maker text, processed_at timestamptz,
    PRIMARY KEY (device_id, date, time_block)
);
"""


def transcripts_of(store, day, slots: list[str]) -> dict[str, str]:
    rows = store.read(vibe_whisper.name, day.device_id, day.date)
    text = dict(zip(rows.time_block, rows.transcription.fillna("")))
    return {slot: text.get(slot, "") for slot in slots}


def count_words(model, texts: dict[str, str], settings) -> dict[str, dict]:
    return {slot: {"words": len(text.split())} for slot, text in texts.items()}


@pytest.fixture
def words_stage(tmp_path):
    table = sa.Table("words_per_slot", schema.metadata,
                     *schema.slot_row_columns(sa.Column("words", sa.Integer)))
    stage = Stage(name="words_per_slot", tables=(table,), deps=("transcripts",),
                  inputs=transcripts_of, compute=count_words, version="1",
                  description="Words per slot of the transcript.")
    (tmp_path / "0099_words_per_slot.sql").write_text(MIGRATION)
    yield stage, [*migration_files(), tmp_path / "0099_words_per_slot.sql"]
    schema.metadata.remove(table)


def test_a_stage_added_to_the_list_is_in_the_graph_the_job_and_its_table(
        words_stage, resources, sample_day, instance, tmp_path):
    stage, migrations = words_stage
    stages = (*STAGES, stage)
    defs = build_definitions({"WATCHME_DATA_DIR": str(tmp_path / "data"),
                              "WATCHME_MODEL_PROFILE": "tiny"}, stages=stages)
    graph = defs.resolve_asset_graph()
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("words_per_slot")).parent_keys
            } == {"transcripts"}
    assert "words_per_slot" in {n.name for n in defs.resolve_job_def(JOB_NAME).nodes}

    store = resources["result_store"]
    migrate(store.engine, migrations)  # what `python -m watchme_pipeline migrate` applies
    makers = Makers(resources["model_registry"], PipelineSettings(), LocalMoodScorer().name())
    assets = build_assets(PARTITIONS, makers, stages)
    assert materialize_day(resources, instance, assets=assets).success

    words = store.read("words_per_slot", DEVICE, DATE)
    text = store.read(vibe_whisper.name, DEVICE, DATE)
    recorded = store.current_recordings(DEVICE, DATE)
    assert len(words) == int(recorded.decodes.sum()) > 0
    expected = {r.time_block: len((r.transcription or "").split()) for r in text.itertuples()}
    assert dict(zip(words.time_block, words.words)) == expected
    assert set(words.maker) == {stage.maker(None, PipelineSettings())}

    partition = f"{DATE}|{DEVICE}"
    assert stale_status(instance, assets, "words_per_slot", partition) == "FRESH"
    changed = build_assets(PARTITIONS, makers, (*STAGES, dataclasses.replace(stage,
                                                                             version="2")))
    assert stale_status(instance, changed, "words_per_slot", partition) == "STALE"
    assert stale_status(instance, changed, "transcripts", partition) == "FRESH"
