"""The whole graph on a generated device-day with the tiny models."""

import math

import dagster as dg
import pandas as pd
import pytest
from conftest import ASSET, DATE, DEVICE, materialize_day

from watchme_pipeline.sample_data import CORRUPT, MISSING, SPEECH
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stages.raw_audio import status_names

RECORDED = [s for s in SLOTS if s not in MISSING]
DECODABLE = [s for s in RECORDED if s != CORRUPT]
QUIET = [s for s in DECODABLE if s not in SPEECH]


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mats[0].metadata.items()}


def table(store, name: str) -> pd.DataFrame:
    return store.read(name, DEVICE, DATE)


def stable(df: pd.DataFrame) -> list[dict]:
    df = df.drop(columns=[c for c in ("processed_at", "updated_at", "generated_at")
                          if c in df.columns]).astype(object)
    return df.where(df.notna(), None).to_dict("records")


@pytest.fixture
def first_run(resources, instance, sample_day):
    result = materialize_day(resources, instance)
    assert result.success
    return result


def test_whole_day_rows_statuses_and_scores(first_run, resources):
    store = resources["result_store"]
    files = table(store, "audio_files")
    assert len(files) == len(RECORDED) == 38
    assert sorted(files.time_block) == RECORDED
    bad = files[files.time_block == CORRUPT].iloc[0]
    for stage in status_names():
        assert bad[f"{stage}_status"] == "failed"
        assert (files[files.time_block != CORRUPT][f"{stage}_status"] == "completed").all()
    assert f"files/{DEVICE}/{DATE}/" in bad.error and "not a readable audio file" in bad.error
    assert bad.decodes == 0 or bad.decodes is False

    raw_meta = meta(first_run, "raw_audio")
    assert raw_meta["recordings"] == 38 and raw_meta["slots_failed"] == 1
    assert list(raw_meta["failed_slots"]) == [CORRUPT]

    text = table(store, "vibe_whisper")
    assert sorted(text.time_block) == DECODABLE
    # Silence and noise never become text (the voice gate never even decodes them).
    assert (text.set_index("time_block").loc[QUIET, "transcription"] == "").all()
    assert set(text.model) == {"tiny-whisper+faster-whisper-int8"}

    events = table(store, "behavior_yamnet")
    assert sorted(events.time_block) == DECODABLE
    first = events.iloc[0]
    assert [w["time"] for w in first.events] == [0.0, 10.24]  # 20 s: two windows, the last padded
    for top in events.top_events:
        assert 0 < len(top) <= 5 and all(0.1 <= e["score"] <= 1 for e in top)
    summary = table(store, "behavior_summary").iloc[0]
    assert len(summary.time_blocks) == 48 and summary.time_blocks["00-00"] is None
    assert summary.summary_ranking[0]["count"] >= summary.summary_ranking[-1]["count"]

    emotion = table(store, "emotion_superb").set_index("time_block")
    speech = emotion.loc[sorted(SPEECH)]
    assert (speech[["neutral", "happy", "angry", "sad"]].sum(axis=1).round(3) == 1.0).all()
    assert emotion.loc[sorted(set(QUIET) - SPEECH), "happy"].isna().all()
    assert len(table(store, "emotion_opensmile_summary").iloc[0].emotion_graph) == 48

    prompt = table(store, "vibe_whisper_prompt").iloc[0]
    assert prompt.processed_files == 37
    assert prompt.missing_files == sorted(MISSING | {CORRUPT})
    assert f"[{CORRUPT}] (録音エラー)" in prompt.prompt and "[00-00] (録音なし)" in prompt.prompt

    mood = table(store, "vibe_whisper_summary").iloc[0]
    scores = mood.vibe_scores
    assert len(scores) == 48
    assert [s for s, v in zip(SLOTS, scores) if v is None] == sorted(MISSING | {CORRUPT})
    assert all(isinstance(v, int) and -100 <= v <= 100 for v in scores if v is not None)
    known = [v for v in scores if v is not None]
    assert math.isclose(mood.average_score, round(sum(known) / len(known), 1))
    assert mood.positive_hours + mood.negative_hours + mood.neutral_hours == 0.5 * 37
    chart_meta = meta(first_run, "mood_chart")
    assert chart_meta["chart"].startswith("![mood chart](data:image/png;base64,")
    assert chart_meta["scored_slots"] == 37
    # Numbers the UI plots across partitions, and the insights the description promises.
    assert (chart_meta["recorded_slots"], chart_meta["failed_slots"]) == (37, 1)
    assert chart_meta["average_score"] == mood.average_score
    assert chart_meta["insights"] == mood.insights and "37 recorded slots" in mood.insights
    with open(mood.chart_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # People's words stay in the tables: no asset's metadata holds a transcript, the prompt
    # or a per-slot preview (counts and figures only).
    words = [t for t in text.transcription if len(t) >= 4] + [prompt.prompt]
    for node in ("raw_audio", "transcripts", "event_scores", "emotion_scores", "vibe_prompt",
                 "mood_chart"):
        entries = meta(first_run, node)
        assert "preview" not in entries and "prompt" not in entries, node
        shown = " ".join(str(v) for v in entries.values())
        assert not any(w in shown for w in words), node
    assert meta(first_run, "vibe_prompt")["prompt_characters"] == len(prompt.prompt)


def test_each_model_loads_once_per_run(first_run):
    for stage in ("transcripts", "event_scores", "emotion_scores"):
        assert meta(first_run, stage)["model_loaded"] is True


def test_rematerializing_is_idempotent_and_skips_completed_slots(first_run, resources,
                                                                  instance):
    store = resources["result_store"]
    tables = ["audio_files", "vibe_whisper", "behavior_yamnet", "behavior_summary",
              "emotion_superb", "vibe_whisper_prompt", "vibe_whisper_summary"]
    before = {t: stable(table(store, t)) for t in tables}
    second = materialize_day(resources, instance)
    assert second.success
    after = {t: stable(table(store, t)) for t in tables}
    assert after == before
    m = meta(second, "transcripts")
    assert (m["slots_processed"], m["slots_skipped"], m["slots_failed"]) == (0, 37, 1)

    # Asked to, it recomputes everything, and still writes exactly one row per slot.
    third = materialize_day(resources, instance, run_config=dg.RunConfig(
        resources={"settings": {"config": {"recompute": True}}}))
    assert meta(third, "transcripts")["slots_processed"] == 37
    assert stable(table(store, "vibe_whisper")) == before["vibe_whisper"]


def test_a_new_file_costs_only_its_slot_and_a_later_file_wins(first_run, resources, instance,
                                                              sample_day):
    store, audio = resources["result_store"], resources["audio_store"]
    missing_slot_key = f"files/{DEVICE}/{DATE}/13-00/audio.wav"
    later_key = f"files/{DEVICE}/{DATE}/09-15-00/audio.wav"  # a second file in slot 09-00
    silent = sample_day[f"files/{DEVICE}/{DATE}/09-30/audio.wav"]
    audio.write(missing_slot_key, silent)
    audio.write(later_key, silent)
    result = materialize_day(resources, instance)
    assert result.success
    m = meta(result, "transcripts")
    assert (m["slots_processed"], m["slots_skipped"]) == (2, 36)
    files = table(store, "audio_files")
    assert len(files) == 40
    nine = files[files.time_block == "09-00"].sort_values("recorded_at")
    assert list(nine.transcriptions_status) == ["superseded", "completed"]
    assert meta(result, "raw_audio")["superseded_recordings"] == [
        f"files/{DEVICE}/{DATE}/09-00-06/audio.wav"]
    text = table(store, "vibe_whisper").set_index("time_block")
    assert len(text) == 38 and text.loc["09-00", "transcription"] == ""


def test_unknown_device_fails_clearly(resources, instance, sample_day):
    instance.add_dynamic_partitions("devices", ["ghost"])
    result = dg.materialize([ASSET["raw_audio"]], partition_key="2025-07-18|ghost",
                            resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    message = failure.event_specific_data.error.message
    assert "unknown device 'ghost'" in message and "files/ghost/" in message


def test_malformed_keys_and_device_ids_fail_clearly_and_lose_nothing_else(resources, instance,
                                                                         sample_day,
                                                                         audio_store):
    # Keys in the store that are no recording key: skipped with the reason, the day goes on.
    silent = sample_day[f"files/{DEVICE}/{DATE}/09-30/audio.wav"]
    bad_keys = {f"files/{DEVICE}/{DATE}/9am/audio.wav": "is not HH-MM or HH-MM-SS",
                f"files/{DEVICE}/{DATE}/25-00/audio.wav": "impossible time"}
    for key in bad_keys:
        audio_store.write(key, silent)
    result = materialize_day(resources, instance, assets=[ASSET["raw_audio"]])
    assert result.success
    skipped = meta(result, "raw_audio")["skipped_keys"]
    assert set(skipped) == set(bad_keys)
    assert all(reason in skipped[key] for key, reason in bad_keys.items())
    assert meta(result, "raw_audio")["recordings"] == 38  # every real recording registered
    # A device id that must not become a path or SQL value: the run fails before any I/O.
    instance.add_dynamic_partitions("devices", ["..%2Fetc"])
    bad = dg.materialize([ASSET["raw_audio"]], partition_key="2025-07-18|..%2Fetc",
                         resources=resources, instance=instance, raise_on_error=False)
    assert not bad.success
    failure = [e for e in bad.all_events if e.is_step_failure][0]
    assert "invalid device id '..%2Fetc'" in failure.event_specific_data.error.message
    assert len(resources["result_store"].read("audio_files", "..%2Fetc", DATE)) == 0

def test_day_with_no_audio_for_a_known_device_is_empty_not_an_error(resources, instance,
                                                                    sample_day):
    result = materialize_day(resources, instance, date="2025-07-19",
                             assets=[ASSET["raw_audio"], ASSET["transcripts"]])
    assert result.success
    assert meta(result, "raw_audio")["recordings"] == 0
    assert meta(result, "transcripts")["slots_processed"] == 0
