"""Whose voice each turn is (issue #33): the wearer rule on made-up voices (plain numpy), and
the speakers stage with the real encoder (resemblyzer's wheel) on Kokoro's Japanese voices,
through the stage runner: no profile for the first days, then wearer and other; the emotion
stage hearing the wearer only."""

import io
import logging
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf

from watchme_pipeline.partitions import DeviceDay
from watchme_pipeline.resources import LocalAudioStore, ModelRegistry, SqlResultStore
from watchme_pipeline.settings import PipelineSettings
from watchme_pipeline.speaker_profile import MIN_DAYS, History, build_profile
from watchme_pipeline.stage_runner import run_slot_stage
from watchme_pipeline.stages import stage_named
from watchme_pipeline.stages.raw_audio import find_recordings

LOG = logging.getLogger("test")
SR = 16_000


def voices(n: int, rng: np.random.Generator, centre: np.ndarray, spread: float) -> np.ndarray:
    x = centre + spread * rng.standard_normal((n, len(centre)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def made_up_history(rng: np.random.Generator, days: int) -> tuple[History, np.ndarray]:
    """A wearer (near: -20 dB) and two others (-32 dB) in made-up 256-d voices."""
    centres = [rng.standard_normal(256) for _ in range(3)]
    x, levels, who = [], [], []
    for i, (n, level) in enumerate(((120, -20.0), (40, -32.0), (40, -32.0))):
        x.append(voices(n, rng, centres[i], 0.08))
        levels.append(level + 2 * rng.standard_normal(n))
        who += [i == 0] * n
    history = History(embeddings=np.concatenate(x), levels_db=np.concatenate(levels),
                      days=np.arange(200) % days, enrolled=np.zeros(200, bool))
    return history, np.array(centres)


def test_the_wearer_is_the_near_voice_and_a_profile_needs_three_days():
    rng = np.random.default_rng(0)
    history, centres = made_up_history(rng, days=MIN_DAYS)
    profile = build_profile(history)
    assert profile is not None and profile.params["days"] == MIN_DAYS
    assert 0.55 <= profile.params["wearer_share"] <= 0.65  # 120 of 200 turns
    wearer = profile.wearer_probability(voices(50, rng, centres[0], 0.08), np.full(50, -20.0))
    others = profile.wearer_probability(voices(50, rng, centres[1], 0.08), np.full(50, -32.0))
    assert (wearer >= 0.5).mean() >= 0.95 and (others < 0.5).mean() >= 0.95
    # The wearer said softly is still the wearer: the voice, not only the level.
    soft = profile.wearer_probability(voices(50, rng, centres[0], 0.08), np.full(50, -30.0))
    assert (soft >= 0.5).mean() >= 0.8
    assert build_profile(history).version == profile.version  # same history, same version
    assert build_profile(made_up_history(np.random.default_rng(0), days=2)[0]) is None


# -- the stage, real encoder, Kokoro's voices -------------------------------------------------

WEARER, OTHER = "jf_alpha", "jm_kumo"
DATES = ("2025-07-14", "2025-07-15", "2025-07-16", "2025-07-17")


@pytest.fixture(scope="module")
def ja():
    import japanese_corpus

    if why := japanese_corpus.available():
        pytest.skip(why)
    return japanese_corpus


def conversation(ja, sentences: range, with_other: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """About 30 s: the wearer near (-20 dB) and the other further away (-34 dB) taking turns
    with 0.6 s pauses; (audio, truth per sample: 1 wearer, 2 other). Without the other, its
    turns are silence (the same wearer turns at the same times)."""
    parts, truth = [np.zeros(SR // 2, np.float32)], [np.zeros(SR // 2, np.int8)]
    for k, i in enumerate(sentences):
        voice, level, who = (WEARER, 0.0, 1) if k % 2 == 0 else (OTHER, -14.0, 2)
        speech = ja.speak(ja.SENTENCES[i][1], voice, 1.0) * 10 ** (level / 20)
        parts += [speech if (who == 1 or with_other) else np.zeros_like(speech),
                  np.zeros(int(0.6 * SR), np.float32)]
        truth += [np.full(len(speech), who, np.int8), np.zeros(int(0.6 * SR), np.int8)]
    return np.concatenate(parts), np.concatenate(truth)


def wav(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def run_day(stage: str, device: str, date: str, audio: LocalAudioStore,
            results: SqlResultStore, registry: ModelRegistry, **settings):
    return run_slot_stage(stage_named(stage), DeviceDay(device, date), audio_store=audio,
                          result_store=results, registry=registry,
                          settings=PipelineSettings(**{"memory_mb": 16000, **settings}),
                          log=LOG)


@pytest.mark.slow
def test_speakers_stage_attributes_turns_once_the_device_has_three_days(
        ja, tiny_models, tmp_path):
    audio = LocalAudioStore(root=str(tmp_path / "audio"))
    results = SqlResultStore(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    registry = ModelRegistry(profile="tiny", cache_dir=str(tiny_models))
    truth_by_slot = {}
    for d, date in enumerate(DATES):
        for s, slot in enumerate(("09-00", "14-00")):
            first = 9 + 4 * s if d == 3 else (d * 2 + s) % 5  # the test day: other sentences
            x, truth = conversation(ja, range(first, first + 4))
            truth_by_slot[(date, slot)] = truth
            for device, samples in (("talker", x), ("solo", x)):
                if device == "solo" and d == 3 and slot == "09-00":
                    samples = conversation(ja, range(first, first + 4), with_other=False)[0]
                audio.write(f"files/{device}/{date}/{slot}/audio.wav", wav(samples))
        for device in ("talker", "solo"):
            find_recordings(audio, results, DeviceDay(device, date), ZoneInfo("Asia/Tokyo"), LOG)
            outcome = run_day("speakers", device, date, audio, results, registry)
            if d < MIN_DAYS:  # no profile yet: every turn unknown, as the days before
                assert outcome.summary["profile"] == "none"
                segments = results.read("speech_segments", device, date)
                assert len(segments) >= 4 and set(segments.speaker) == {"unknown"}
    outcome = run_day("speakers", "talker", DATES[3], audio, results, registry)
    assert outcome.summary["profile_from"] == "stored"  # fitted once
    # The next day is attributed by the same profile (a device refits weekly, not daily).
    audio.write("files/talker/2025-07-18/09-00/audio.wav",
                audio.read(f"files/talker/{DATES[3]}/09-00/audio.wav"))
    find_recordings(audio, results, DeviceDay("talker", "2025-07-18"), ZoneInfo("Asia/Tokyo"),
                    LOG)
    later = run_day("speakers", "talker", "2025-07-18", audio, results, registry)
    assert (later.summary["profile"], later.summary["profile_from"]) == (
        outcome.summary["profile"], "stored")
    profile = results.select_rows("speaker_profiles", [("eq", "device_id", "talker")])
    assert list(profile.version) == [outcome.summary["profile"]]
    segments = results.read("speech_segments", "talker", DATES[3])
    assert set(segments.speaker) == {"wearer", "other"}
    assert segments.maker.str.endswith(f"profile {outcome.summary['profile']}").all()
    assert ((segments.confidence >= 0.5) & (segments.confidence <= 1)).all()
    for slot, rows in segments.groupby("time_block"):
        truth = truth_by_slot[(DATES[3], slot)]
        verdict = np.zeros(len(truth), np.int8)
        for r in rows.itertuples():
            verdict[int(r.start_s * SR):int(r.end_s * SR)] = 1 if r.speaker == "wearer" else 2
        covered = (truth > 0) & (verdict > 0)
        assert (verdict[covered] == truth[covered]).mean() >= 0.95, slot
        assert covered.sum() >= 0.9 * (truth > 0).sum()  # the turns cover the speech
    turns = results.read("speaker_turns", "talker", DATES[3])
    assert (turns.wearer_seconds > 5).all() and (turns.other_seconds > 3).all()

    # The emotion stage hears the wearer's turns only, counting the others' seconds.
    emotion = run_day("emotion_scores", "talker", DATES[3], audio, results, registry)
    assert emotion.summary["speech_attributed"] is True
    rows = emotion.rows.set_index("time_block")
    wearer_s = segments[segments.speaker == "wearer"].groupby("time_block").apply(
        lambda g: (g.end_s - g.start_s).sum())
    for slot in ("09-00", "14-00"):
        assert rows.wearer_seconds[slot] == pytest.approx(wearer_s[slot], abs=0.05)
        assert rows.voiced_seconds[slot] == rows.wearer_seconds[slot]
        assert rows.other_seconds[slot] > 3
    assert emotion.rows.maker.str.endswith(f"profile {outcome.summary['profile']}").all()
    # Transcripts: each line marked with its speaker; redacted, Whisper hears the wearer only
    # and others' turns are times without words (the tiny Whisper's words are noise: the
    # speakers and the redaction are what is checked).
    kept = run_day("transcripts", "talker", DATES[3], audio, results, registry)
    assert kept.summary["speech_attributed"] is True and kept.slots_processed == 2
    assert {x["speaker"] for r in kept.rows.lines for x in r} <= {"wearer", "other"}
    redacted = run_day("transcripts", "talker", DATES[3], audio, results, registry,
                       others_speech="redact")
    assert redacted.slots_processed == 2  # another setting that changes the output: redone
    for r in redacted.rows.itertuples():
        others = [x for x in r.lines if x["speaker"] == "other"]
        assert len(others) >= 2 and all(x["text"] is None for x in others)
        assert all(x["speaker"] == "wearer" for x in r.lines if x["text"])
        spoken = segments[(segments.time_block == r.time_block) & (segments.speaker == "other")]
        assert sorted(x["start_s"] for x in others) == sorted(round(v, 2)
                                                               for v in spoken.start_s)
    # The same slot with the other voice removed gives the same emotion row.
    solo = run_day("speakers", "solo", DATES[3], audio, results, registry)
    assert solo.summary["profile"] == outcome.summary["profile"]  # the same history
    alone = run_day("emotion_scores", "solo", DATES[3], audio, results, registry)
    alone_row = alone.rows.set_index("time_block").loc["09-00"]
    for column in ("neutral", "happy", "angry", "sad"):
        assert alone_row[column] == pytest.approx(rows.loc["09-00"][column], abs=0.01), column
    # The VAD's turn edges move by a frame or two where a neighbour turn became silence.
    assert alone_row.wearer_seconds == pytest.approx(rows.loc["09-00"].wearer_seconds, abs=0.2)
    assert alone_row.other_seconds == 0


def test_the_prompt_marks_who_spoke_and_the_local_scorer_reads_the_wearers_words():
    from watchme_pipeline.prompt import build_prompt
    from watchme_pipeline.scoring import SlotSummary, local_slot_score

    said = [{"start_s": 1.0, "end_s": 3.0, "speaker": "wearer", "text": "今日は疲れた"},
            {"start_s": 3.5, "end_s": 6.0, "speaker": "other", "text": "最高だね"},
            {"start_s": 7.0, "end_s": 8.0, "speaker": "other", "text": "うれしい"}]
    slots = [SlotSummary("09-00", recorded=True, transcript="今日は疲れた 最高だね うれしい",
                         lines=said),
             SlotSummary("09-30", recorded=True, transcript="最高",
                         lines=[{"start_s": 0.0, "end_s": 4.5, "speaker": "other",
                                 "text": None}])]
    ja = build_prompt("dev", "2025-07-18", slots, "ja")
    assert "[09-00] 本人: 今日は疲れた / 周りの人: 最高だね うれしい" in ja
    assert "[09-30] 周りの人: 周りの人の発話 4秒" in ja  # redacted: its length only
    assert "周りの人だけが話している時間帯は、本人の気分として扱わないでください" in ja
    en = build_prompt("dev", "2025-07-18", slots, "en")
    assert "[09-00] wearer: 今日は疲れた / others: 最高だね うれしい" in en
    # Others' happy words are not the wearer's mood; unattributed, the transcript counts.
    assert local_slot_score(slots[1]) == 0
    assert local_slot_score(SlotSummary("09-30", recorded=True, transcript="最高")) > 0
    plain = build_prompt("dev", "2025-07-18", [SlotSummary("09-00", recorded=True,
                                                           transcript="最高")], "ja")
    assert "[09-00] 最高" in plain and "本人" not in plain  # no profile: as before


def test_a_line_is_the_speaker_whose_turns_it_overlaps_most_in_slot_time():
    from watchme_pipeline.models.transcribe import Line, Window
    from watchme_pipeline.stages.transcripts import speaker_of

    # A window packs two segments of the slot: 1-3 s and 5-6 s.
    window = Window("09-00", np.zeros(3 * SR, np.float32), "ja",
                    spans=((1 * SR, 3 * SR), (5 * SR, 6 * SR)))
    assert window.slot_sample(0.5) == int(1.5 * SR)
    assert window.slot_sample(2.5) == int(5.5 * SR)  # past the first segment: the second
    turns = {"wearer": [(1 * SR, 3 * SR)], "other": [(5 * SR, 6 * SR)]}
    assert speaker_of(Line(int(1.2 * SR), int(2.9 * SR), "a"), turns) == "wearer"
    assert speaker_of(Line(int(2.8 * SR), int(6 * SR), "b"), turns) == "other"
    assert speaker_of(Line(0, SR, "c"), None) == "unknown"  # no profile


def test_the_speaker_encoder_loads_by_the_registry_real_from_its_wheel_or_tiny(tiny_models):
    from watchme_pipeline.models.speaker import embed_spans
    from watchme_pipeline.models.tiny import build_tiny_speaker

    real = ModelRegistry(profile="tiny", cache_dir=str(tiny_models))
    # Its weights ship in resemblyzer's wheel: real in every profile, no stand-in needed.
    assert real.model_id("speaker") == "resemblyzer-0.1.4" and not real.is_stand_in("speaker")
    tiny = ModelRegistry(speaker_model=str(build_tiny_speaker(tiny_models)),
                         cache_dir=str(tiny_models))
    assert tiny.model_id("speaker").startswith("encoder.pt@sha256:")
    t = np.arange(3 * SR) / SR
    voiced = (0.3 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    embeddings = {}
    for name, registry in (("real", real), ("tiny", tiny)):
        model = registry.get("speaker")
        found = embed_spans(model.model, voiced, [(0, SR), (SR, 3 * SR)])
        assert found.shape == (2, 256)
        assert np.allclose(np.linalg.norm(found, axis=1), 1, atol=1e-4)
        embeddings[name] = found[1]
    assert float(embeddings["real"] @ embeddings["tiny"]) < 0.99  # other weights, other voice
