"""The model stages as plain Python: both Whisper engines behind one interface, the VAD's
windows and Whisper's keep rules, on the tiny random-weight models (plumbing only: what is
heard is tested with the real weights in test_real_whisper.py)."""

from types import SimpleNamespace

import numpy as np
import pytest

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio
from watchme_pipeline.models.catalog import WHISPER_ENGINES
from watchme_pipeline.models.transcribe import (
    WhisperSettings,
    Window,
    _consumed,
    _decode_openai,
    is_silence,
    keep,
    needs_fallback,
    slot_windows,
    transcribe,
)
from watchme_pipeline.resources import ModelRegistry
from watchme_pipeline.sample_data import _noise, _speech
from watchme_pipeline.settings import load_deployment


def audio(samples: np.ndarray, kind: str) -> DecodedAudio:
    return DecodedAudio(samples=samples.astype(np.float32), source_rate=SAMPLE_RATE,
                        channels=1, source_format=kind)


@pytest.fixture(scope="module")
def day_slots() -> dict[str, DecodedAudio]:
    """60 s slots: silence, pink noise, white noise, an alarm, and speech (espeak-ng or its
    stand-in)."""
    rng = np.random.default_rng(3)
    speech, _ = _speech(0, ("espeak-ng", "synthetic"), {}, 60, SAMPLE_RATE, rng, utterances=6)
    return {
        "00-00": audio(np.zeros(60 * SAMPLE_RATE), "silence"),
        "00-30": audio(_noise(0, 60, SAMPLE_RATE, rng), "pink"),
        "01-00": audio(rng.standard_normal(60 * SAMPLE_RATE) * 0.2, "white"),
        "01-30": audio(_noise(2, 60, SAMPLE_RATE, rng), "alarm"),
        "02-00": audio(speech, "speech"),
    }


def test_the_vad_gives_windows_only_where_speech_is(day_slots):
    windows = {slot: slot_windows(a, WhisperSettings()) for slot, a in day_slots.items()}
    assert {slot for slot, w in windows.items() if w} == {"02-00"}
    speech = windows["02-00"]
    # Six sentences (as many as fit) with 2-6 s pauses: its speech (pads included) in windows of
    # at most 30 s, the pauses over 2 s left out.
    assert len(speech) >= 1 and all(len(x) <= 30 * SAMPLE_RATE for x in speech)
    assert 15 * SAMPLE_RATE < sum(len(x) for x in speech) < 50 * SAMPLE_RATE


@pytest.mark.parametrize("engine", WHISPER_ENGINES)
def test_both_engines_give_silence_and_noise_empty_text(tiny_models, day_slots, engine):
    registry = ModelRegistry(profile="tiny", cache_dir=str(tiny_models), whisper_engine=engine)
    loaded = registry.get("whisper")
    results = transcribe(loaded.model, day_slots, WhisperSettings())
    assert set(results) == set(day_slots)
    for slot in ("00-00", "00-30", "01-00", "01-30"):
        assert results[slot].text == "" and results[slot].windows == 0, slot
    speech = results["02-00"]
    assert speech.windows >= 1  # the VAD's windows reached the engine
    assert speech.dropped <= speech.windows and speech.language == "ja"
    # Random weights: whatever is kept went through the same cleaning (no tokens, no loops).
    assert "<|" not in speech.text and len(speech.text) < 5000
    suffix = "+faster-whisper-int8" if engine == "faster-whisper" else ""
    assert loaded.model_id == f"tiny-whisper{suffix}"


def muffle(samples: np.ndarray, cutoff_hz: float = 800.0) -> np.ndarray:
    """Sound through a wall: the highs above ``cutoff_hz`` taken (to -34 dB)."""
    spec = np.fft.rfft(samples)
    spec[int(cutoff_hz * len(samples) / SAMPLE_RATE):] *= 0.02
    return np.fft.irfft(spec, len(samples)).astype(np.float32)


def test_muffled_speech_is_not_decoded(day_slots):
    """The same sentences through a wall (the TV in the next room of the Japanese corpus):
    the VAD finds them, the band rule leaves them out, so no window reaches Whisper."""
    speech = day_slots["02-00"]
    through_wall = audio(muffle(speech.samples), "muffled")
    assert through_wall.voiced_seconds > 10  # the VAD does call it speech
    assert slot_windows(through_wall, WhisperSettings()) == []
    # The rule off, the same segments are windows again.
    assert len(slot_windows(through_wall, WhisperSettings(min_high_band_db=-99))) >= 1
    assert len(slot_windows(speech, WhisperSettings())) >= 1


def test_muffled_segments_are_counted_and_the_others_decoded(tiny_models, day_slots):
    speech = day_slots["02-00"].samples
    # The cut falls in the pause nearest the middle, so no segment is half clear, half
    # muffled, whichever voice (espeak-ng or the synthetic stand-in) spoke.
    segments = day_slots["02-00"].speech()
    gaps = [(end + start) // 2 for (_, end), (start, _) in zip(segments, segments[1:])]
    half = min(gaps, key=lambda g: abs(g - len(speech) // 2))
    mixed = audio(np.concatenate([speech[:half], muffle(speech[half:])]), "mixed")
    registry = ModelRegistry(profile="tiny", cache_dir=str(tiny_models),
                             whisper_engine="faster-whisper")
    result = transcribe(registry.get("whisper").model, {"03-00": mixed}, WhisperSettings())
    heard = [seg for seg in mixed.speech() if seg[1] <= half]
    assert result["03-00"].muffled == len(mixed.speech()) - len(heard) >= 1
    assert result["03-00"].windows >= 1  # the near half still went to Whisper


def _decode(no_speech: float, logprob: float, ratio: float, temperature: float = 0.0
            ) -> SimpleNamespace:
    return SimpleNamespace(no_speech_prob=no_speech, avg_logprob=logprob,
                           compression_ratio=ratio, temperature=temperature)


@pytest.mark.parametrize(("decode", "silence", "fallback", "kept"), [
    (_decode(0.9, -1.5, 1.2), True, False, False),  # no speech, low confidence: silence
    (_decode(0.9, -0.4, 1.2), False, False, True),  # confident text despite no-speech prob
    (_decode(0.1, -1.5, 1.2), False, True, True),  # low confidence speech: retried, kept
    (_decode(0.1, -0.3, 3.1), False, True, False),  # a loop: retried; dropped if it stays
    # A loop the model also calls no speech (a TV through a wall: 「あなたは知りません。」 x12
    # at -0.21, no-speech 0.66): silence, not sent down the fallback.
    (_decode(0.66, -0.21, 8.33), True, False, False),
    (_decode(0.1, -0.3, 1.6), False, False, True),  # ordinary speech
    # After the last temperature: still low confidence is sampled nonsense (a TV through a
    # wall: -2.7), dropped; confident text found by sampling is kept.
    (_decode(0.59, -2.74, 1.5, 1.0), False, True, False),
    (_decode(0.1, -0.6, 1.5, 1.0), False, False, True),
    (_decode(0.1, -1.2, 1.5, 0.4), False, True, True),  # the fallback is not over yet
])
def test_whisper_keep_rules(decode, silence, fallback, kept):
    s = WhisperSettings()
    assert (is_silence(decode, s), needs_fallback(decode, s), keep(decode, s)) == (
        silence, fallback, kept)


T0 = 50364  # Whisper base's <|0.00|>; a timestamp step is 0.02 s, two mel frames


@pytest.mark.parametrize(("tokens", "step", "kept"), [
    # Ended after a closed segment with text left over: go on from its end (5.00 s) and
    # keep only the closed segments; the rest is decoded again from there.
    ([T0, 1, 2, T0 + 150, T0 + 150, 3, 4, T0 + 250, T0 + 250, 5, 6], 500, 8),
    # Ended on a single timestamp: its text runs to the end of the window, all kept.
    ([T0, 1, 2, T0 + 150, T0 + 150, 3, 4, T0 + 250], 1200, 8),
    ([1, 2, 3], 1200, 3),  # no timestamps at all: taken whole
    ([T0, 1, T0 + 40, T0 + 40, 2], 1200, 5),  # under a second in: taken whole
])
def test_a_decode_with_timestamps_goes_on_from_its_last_closed_segment(tokens, step, kept):
    assert _consumed(tokens, 1200, 2, T0) == (step, tokens[:kept])


def test_unknown_engine_is_refused_naming_the_variable(tiny_models):
    registry = ModelRegistry(profile="tiny", cache_dir=str(tiny_models), whisper_engine="vosk")
    with pytest.raises(ValueError, match="WATCHME_WHISPER_ENGINE='vosk': expected one of"):
        registry.get("whisper")
    with pytest.raises(ValueError, match="WATCHME_WHISPER_ENGINE='vosk'"):  # at load, too
        load_deployment({"WATCHME_WHISPER_ENGINE": "vosk"})


def test_faster_whisper_int8_is_estimated_at_a_quarter():
    fp32 = ModelRegistry(profile="standard", cache_dir="/nonexistent",
                         whisper_engine="openai-whisper")
    int8 = ModelRegistry(profile="standard", cache_dir="/nonexistent",
                         whisper_engine="faster-whisper")
    assert int8.estimate_mb("whisper") == pytest.approx(fp32.estimate_mb("whisper") / 4)
    assert int8.model_id("whisper") == "base+faster-whisper-int8"
    assert fp32.model_id("whisper") == "base"




def test_batch_sizes_do_not_change_results(tiny_models, day_slots):
    """Batch sizes are left out of a row's maker (a memory limit may shrink them): so they
    must not change what a stage writes. Each model, batched and one at a time, on the same
    slots (tiny random-weight models: the arithmetic, not what they hear)."""
    import dataclasses

    from watchme_pipeline.audio import speech_segments
    from watchme_pipeline.models.emotion import EmotionSettings, classify_emotion
    from watchme_pipeline.models.events import EventSettings, classify_events

    # Silence, white noise and 20 s of speech (two windows): enough to batch, kept short.
    slots = {k: dataclasses.replace(a, samples=a.samples[:20 * SAMPLE_RATE])
             for k, a in day_slots.items() if k in ("00-00", "01-00", "02-00")}
    slots = {k: dataclasses.replace(a, segments=speech_segments(a.samples))
             for k, a in slots.items()}
    registry = ModelRegistry(profile="tiny", cache_dir=str(tiny_models),
                             whisper_engine="openai-whisper")
    events = registry.get("events")
    one, three = (classify_events(events.model, events.extractor, slots,
                                  EventSettings(batch_size=b)) for b in (1, 3))
    for slot in slots:
        a, b = one[slot].windows, three[slot].windows
        assert [w["time"] for w in a] == [w["time"] for w in b] and len(a) >= 2
        for wa, wb in zip(a, b):
            assert [e["label"] for e in wa["events"]] == [e["label"] for e in wb["events"]]
            assert np.allclose([e["score"] for e in wa["events"]],
                               [e["score"] for e in wb["events"]], atol=1e-5)
    emotion = registry.get("emotion")
    one, three = (classify_emotion(emotion.model, emotion.extractor, slots,
                                   EmotionSettings(batch_size=b)) for b in (1, 3))
    assert one["02-00"] is not None and one["00-00"] is None
    for slot in slots:
        assert (one[slot] is None) == (three[slot] is None)
        if one[slot]:
            assert np.allclose(list(one[slot].values()), list(three[slot].values()), atol=1e-5)
    whisper = registry.get("whisper")
    # openai-whisper batches only when greedy (its beam search takes a window at a time) and
    # only its short windows (a long one is decoded with timestamps, on its own): the speech
    # slot in three 20 s parts (espeak-ng: windows of 13.5, 9.4 and 9.5 s), the longest
    # window decoded alone and the other two batched.
    speech = day_slots["02-00"].samples
    parts = {f"02-{20 * i:02d}": dataclasses.replace(
        day_slots["02-00"], samples=speech[i * 20 * SAMPLE_RATE:(i + 1) * 20 * SAMPLE_RATE])
        for i in range(3)}
    parts = {k: dataclasses.replace(a, segments=speech_segments(a.samples))
             for k, a in parts.items()}
    lengths = sorted(len(w) / SAMPLE_RATE for a in parts.values()
                     for w in slot_windows(a, WhisperSettings()))
    assert len(lengths) >= 3 and lengths[-1] > lengths[-2], lengths
    # Batching touches only the first decode (the fallback takes a window alone), so the
    # ladder and the token bound are cut to keep random weights' 224-token decodes short.
    settings = [WhisperSettings(beam_size=1, batch_size=b, temperatures=(0.0,), sample_len=64,
                                timestamps_from_s=(lengths[-1] + lengths[-2]) / 2)
                for b in (1, 4)]
    # What the decoder wrote (before the keep rules, which drop random weights' text), per
    # window in order: the same tokens batched or not.
    windows = [Window(k, x, "ja") for k, a in parts.items() for x in slot_windows(a, settings[0])]
    decoded = [[(w.slot, [list(r.tokens) for r in results])
                for w, results in _decode_openai(whisper.model, windows, s)] for s in settings]
    assert decoded[0] == decoded[1]
    assert [slot for slot, _ in decoded[0]] == list(parts)
    assert all(tokens for _, pieces in decoded[0] for tokens in pieces)
    texts = [{k: t.text for k, t in transcribe(whisper.model, parts, s).items()}
             for s in settings]
    assert texts[0] == texts[1] and set(texts[0]) == set(parts)
