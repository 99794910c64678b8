"""The plain functions under the assets, without Dagster: the stage runner, finding
recordings, the validated scoring call, and emotion's chunking of the speech segments."""

import dataclasses
import io
import logging
import os
import time
import types
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio
from watchme_pipeline.models.emotion import EmotionSettings, classify_emotion
from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources import LocalAudioStore, ModelRegistry, SqlResultStore
from watchme_pipeline.resources.model_registry import LoadedModel
from watchme_pipeline.resources.mood_scorer import LocalMoodScorer
from watchme_pipeline.scoring import SlotSummary
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.slots import SLOTS
from watchme_pipeline.stage import Stage
from watchme_pipeline.stage_runner import run_slot_stage
from watchme_pipeline.stages.mood_chart import NoValidReply, score_validated
from watchme_pipeline.stages.raw_audio import UnknownDevice, find_recordings
from watchme_pipeline.stages.transcripts import STAGE as transcripts_stage

DAY = DeviceDay("dev-1", "2025-07-18")
LOG = logging.getLogger("test")


def wav(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buf, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


class StubRegistry(ModelRegistry):
    """Model ids by configuration; "loading" returns a marker (no weights)."""

    ids: dict = {}

    def model_id(self, kind: str) -> str:
        return self.ids[kind]

    def load_model(self, kind):
        return f"model:{self.ids[kind]}", None

    def source(self, kind):
        return "stub"

    def estimate_mb(self, kind):
        return 1.0

    def held_mb(self) -> float:
        # What the stubs hold, not this process's RSS: tests before these may have loaded
        # real Whisper into the same pytest process.
        return float(len(self._loaded))


def duration_stage(calls: list) -> Stage:
    """A stage whose 'model' writes each slot's duration: what the runner does is visible."""
    def compute(model: LoadedModel, audios: dict[str, DecodedAudio], settings) -> dict:
        calls.append(sorted(audios))
        return {slot: {"transcription": f"{a.duration_s:.0f}s by {model.model}"}
                for slot, a in audios.items()}

    return dataclasses.replace(transcripts_stage, compute=compute, version="1",
                               model_settings=lambda s: EmotionSettings())  # any dataclass


@pytest.fixture
def day(tmp_path):
    audio = LocalAudioStore(root=str(tmp_path / "audio"))
    store = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    for time_part, data in [("07-00", wav(3)), ("07-30", wav(5)), ("08-00", b"RIFFbroken"),
                            ("08-30", wav(2)), ("08-30-00", wav(4))]:
        audio.write(f"files/dev-1/2025-07-18/{time_part}/audio.wav", data)
    audio.write("files/dev-1/2025-07-18/noon/audio.wav", wav(1))
    return audio, store


def test_find_recordings_registers_supersedes_and_skips(day):
    audio, store = day
    df, skipped = find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    assert list(skipped) == ["files/dev-1/2025-07-18/noon/audio.wav"]
    assert len(df) == 5 and df.superseded.sum() == 1
    assert df[df.superseded].key.tolist() == ["files/dev-1/2025-07-18/08-30/audio.wav"]
    files = store.read("audio_files", "dev-1", "2025-07-18").set_index("file_path")
    broken = files.loc["files/dev-1/2025-07-18/08-00/audio.wav"]
    assert broken.transcriptions_status == "failed" and "not a readable audio file" in broken.error
    assert files.loc["files/dev-1/2025-07-18/08-30/audio.wav"].emotion_features_status == (
        "superseded")
    with pytest.raises(UnknownDevice, match="unknown device 'ghost'"):
        find_recordings(audio, store, DeviceDay("ghost", "2025-07-18"), ZoneInfo("UTC"), LOG)


def test_find_recordings_reads_only_what_is_new_or_uploaded_again(day):
    """A run after each upload decodes that upload, not the day again (O(new))."""
    audio, store = day
    first, _ = find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    assert first.read.tolist() == [True] * 5
    registered = store.recordings("dev-1", "2025-07-18")
    audio.write("files/dev-1/2025-07-18/09-00/audio.wav", wav(6))  # a new upload
    second, _ = find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    assert second.set_index("slot").read.to_dict() == {
        "07-00": False, "07-30": False, "08-00": False, "08-30": False, "09-00": True}
    assert second.read.sum() == 1 and len(second) == 6
    # What it did not read again is what it found the first time.
    for column in ("duration_s", "sample_rate", "decodes", "vad_segments", "error"):
        again = store.recordings("dev-1", "2025-07-18").set_index("file_path")[column]
        before = registered.set_index("file_path")[column]
        assert again.loc[before.index].equals(before), column
    broken = store.recordings("dev-1", "2025-07-18").set_index("time_block").loc["08-00"]
    assert broken.transcriptions_status == "failed" and not broken.decodes
    # A file uploaded again under its key (new LastModified) is read again.
    path = f"{audio.root}/files/dev-1/2025-07-18/07-00/audio.wav"
    with open(path, "wb") as f:
        f.write(wav(8))
    os.utime(path, (time.time() + 5, time.time() + 5))  # a LastModified surely later
    third, _ = find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    assert third.set_index("key").read.sum() == 1
    row = store.recordings("dev-1", "2025-07-18").set_index("time_block").loc["07-00"]
    assert row.duration_s == 8.0


def test_the_runner_computes_what_is_missing_and_redoes_another_models_rows(day):
    audio, store = day
    find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    calls: list = []
    stage = duration_stage(calls)
    settings = PipelineSettings()
    old = StubRegistry(ids={"whisper": "model-a"})
    first = run_slot_stage(stage, DAY, audio_store=audio, result_store=store, registry=old,
                           settings=settings, log=LOG)
    assert calls == [["07-00", "07-30", "08-30"]]
    figures = first.figures()
    assert (figures["slots_found"], figures["slots_processed"], figures["slots_skipped"],
            figures["slots_failed"]) == (4, 3, 0, 1)
    assert "08-00" in figures["failed_slots"] and figures["model_loaded"] is True
    # What the rows record: the stage's maker and what attributed the speech (no profile).
    assert figures["maker"] == "transcripts v1 model-a EmotionSettings(min_voiced_s=1.0, " \
        "chunk_s=5.0) | speakers: none"
    rows = store.read("vibe_whisper", "dev-1", "2025-07-18").set_index("time_block")
    assert rows.transcription.to_dict() == {"07-00": "3s by model:model-a",
                                            "07-30": "5s by model:model-a",
                                            "08-30": "4s by model:model-a"}  # the later file
    assert set(rows.model) == {"model-a"} and set(rows.maker) == {figures["maker"]}
    assert first.rows.time_block.tolist() == ["07-00", "07-30", "08-30"]
    # Again with the same model: nothing to do, no model loaded.
    again = run_slot_stage(stage, DAY, audio_store=audio, result_store=store,
                           registry=StubRegistry(ids={"whisper": "model-a"}),
                           settings=settings, log=LOG)
    assert (again.slots_processed, again.slots_skipped, again.model_loaded) == (0, 3, False)
    # Another model: every completed slot is redone, without `recompute`.
    new = run_slot_stage(stage, DAY, audio_store=audio, result_store=store,
                         registry=StubRegistry(ids={"whisper": "model-b"}),
                         settings=settings, log=LOG)
    assert new.slots_processed == 3
    assert set(store.read("vibe_whisper", "dev-1", "2025-07-18").model) == {"model-b"}
    # recompute: everything, by request.
    forced = run_slot_stage(stage, DAY, audio_store=audio, result_store=store,
                            registry=StubRegistry(ids={"whisper": "model-b"}),
                            settings=PipelineSettings(recompute=True), log=LOG)
    assert forced.slots_processed == 3
    assert len(calls) == 3


def test_a_run_with_another_language_redoes_its_slots_and_batch_sizes_do_not(day):
    """The maker holds the settings that change a stage's output: another language redoes
    every slot; a batch size or memory limit (which must not change results) redoes none."""
    audio, store = day
    find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)
    calls: list = []
    stage = dataclasses.replace(duration_stage(calls),
                                model_settings=transcripts_stage.model_settings)
    registry = StubRegistry(ids={"whisper": "model-a"})

    def run(**settings):
        return run_slot_stage(stage, DAY, audio_store=audio, result_store=store,
                              registry=registry, settings=PipelineSettings(**settings), log=LOG)

    ja = run()
    assert ja.slots_processed == 3 and "language='ja'" in ja.maker
    for same in ({"whisper_batch_size": 1}, {"memory_mb": 3000}, {"whisper_batch_size": 3}):
        outcome = run(**same)
        assert (outcome.slots_processed, outcome.maker) == (0, ja.maker), same
    en = run(language="en")
    assert en.slots_processed == 3 and "language='en'" in en.maker
    assert set(store.read("vibe_whisper", "dev-1", "2025-07-18").maker) == {en.maker}
    back = run()
    assert back.slots_processed == 3
    assert set(store.read("vibe_whisper", "dev-1", "2025-07-18").maker) == {ja.maker}
    assert [len(c) for c in calls] == [3, 3, 3]


def test_a_model_error_fails_its_slots_with_the_reason_and_is_raised(day):
    audio, store = day
    find_recordings(audio, store, DAY, ZoneInfo("Asia/Tokyo"), LOG)

    def broken(model, audios, settings):
        raise RuntimeError("out of cheese")

    stage = dataclasses.replace(transcripts_stage, compute=broken,
                                model_settings=lambda s: EmotionSettings())
    with pytest.raises(RuntimeError, match="out of cheese"):
        run_slot_stage(stage, DAY, audio_store=audio, result_store=store,
                       registry=StubRegistry(ids={"whisper": "m"}), settings=PipelineSettings(),
                       log=LOG)
    current = store.current_recordings("dev-1", "2025-07-18")
    assert len(current) == 4 and set(current.transcriptions_status) == {"failed"}
    assert "transcripts: RuntimeError: out of cheese" in set(current.error)


class Replies:
    def __init__(self, replies):
        self.replies = list(replies)

    def name(self):
        return "scripted"

    def score_day(self, prompt, slots, log=None):
        return self.replies.pop(0)


def test_scoring_retries_a_malformed_reply_and_gives_up_with_the_reason():
    slots = [SlotSummary(slot=slot, recorded=slot == "07-00", failed=False,
                         transcript="はい" if slot == "07-00" else None, events=[], emotion=None)
             for slot in SLOTS]
    good = LocalMoodScorer().score_day("p", slots)
    result = score_validated(Replies(["not json", good]), "p", slots, LOG, backoff_s=0)
    assert len(result.vibe_scores) == 48 and result.vibe_scores[14] is not None
    assert sum(v is not None for v in result.vibe_scores) == 1  # only the recorded slot
    with pytest.raises(NoValidReply, match="scripted gave no valid reply after 2 attempts"):
        score_validated(Replies(["{", "[]"]), "p", slots, LOG, attempts=2, backoff_s=0)


def test_emotion_listens_to_speech_segments_in_5_s_chunks_weighted_by_length():
    seen = []

    class Model:
        config = types.SimpleNamespace(id2label={0: "neu", 1: "hap"}, num_labels=2)

        def __call__(self, input_values):
            import torch

            n = input_values.shape[-1]
            seen.append(n)
            # hap for long chunks, neu for short ones
            return types.SimpleNamespace(logits=torch.tensor([[0.0, 20.0]] if n > 3 * 16000
                                                             else [[20.0, 0.0]]))

    def extractor(chunks, sampling_rate, return_tensors):
        import torch

        return {"input_values": torch.tensor(np.stack(chunks))}

    samples = np.zeros(60 * SAMPLE_RATE, dtype=np.float32)
    speech = DecodedAudio(samples, 16000, 1, "WAV", segments=[(0, 8 * SAMPLE_RATE),
                                                              (30 * SAMPLE_RATE,
                                                               34 * SAMPLE_RATE)])
    quiet = DecodedAudio(samples, 16000, 1, "WAV", segments=[(0, SAMPLE_RATE // 2)])
    out = classify_emotion(Model(), extractor, {"a": speech, "b": quiet}, EmotionSettings())
    assert sorted(seen) == [2 * SAMPLE_RATE, 5 * SAMPLE_RATE, 5 * SAMPLE_RATE]  # 12 s of speech
    assert out["b"] is None  # under a second of speech: no emotion
    assert out["a"]["hap"] == pytest.approx(10 / 12, abs=1e-3)  # weighted by chunk length
    assert out["a"]["neu"] == pytest.approx(2 / 12, abs=1e-3)
