"""The emotion model (wav2vec2) on ONNX Runtime, its default: exported dynamic in time and
checked against PyTorch, the same probabilities, and a step that loads the cached export
without torch or transformers (what keeps it inside 1 GB). Tiny wav2vec2 (the real
architecture, random weights)."""

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio, speech_segments
from watchme_pipeline.models.emotion import EmotionSettings, classify_emotion
from watchme_pipeline.models.onnx_runtime import OnnxClassifier, Wav2Vec2Inputs, check_inputs
from watchme_pipeline.resources import ModelRegistry
from watchme_pipeline.resources.model_registry import ModelBudgetError
from watchme_pipeline.sample_data import _speech


@pytest.fixture
def registry(tiny_models, tmp_path):
    """The tiny models, with an ONNX cache of this test's own."""
    (tmp_path / "tiny-emotion").symlink_to(tiny_models / "tiny-emotion")
    return lambda **kw: ModelRegistry(profile="tiny", cache_dir=str(tmp_path), **kw)


@pytest.fixture(scope="module")
def voiced_slots() -> dict[str, DecodedAudio]:
    """Two slots of speech (espeak-ng or its stand-in) with their speech segments: chunks of
    5 s and shorter ones, so the export's dynamic time axis is used."""
    rng = np.random.default_rng(5)
    out = {}
    for i, seconds in enumerate((40, 17)):
        x, _ = _speech(i, ("espeak-ng", "synthetic"), {}, seconds, SAMPLE_RATE, rng)
        audio = DecodedAudio(samples=x, source_rate=SAMPLE_RATE, channels=1, source_format="w")
        out[f"0{i}-00"] = dataclasses.replace(audio, segments=speech_segments(x))
    return out


def test_onnx_probabilities_match_pytorch_and_the_model_names_its_runtime(registry,
                                                                            voiced_slots):
    onnx = registry().get("emotion")
    torch_model = registry(emotion_runtime="pytorch").get("emotion")
    assert isinstance(onnx.model, OnnxClassifier) and onnx.model.export.max_abs_diff < 1e-4
    assert onnx.model_id == "tiny-emotion+onnxruntime-fp32"
    assert torch_model.model_id == "tiny-emotion"
    got = classify_emotion(onnx.model, onnx.extractor, voiced_slots, EmotionSettings())
    want = classify_emotion(torch_model.model, torch_model.extractor, voiced_slots,
                            EmotionSettings())
    assert set(got) == set(voiced_slots) and all(got.values())
    for slot in voiced_slots:
        assert list(got[slot]) == ["neu", "hap", "ang", "sad"]
        assert abs(sum(got[slot].values()) - 1) < 1e-3
        assert max(abs(got[slot][k] - want[slot][k]) for k in got[slot]) <= 1e-4
    # Dynamic in time: a 2.3 s chunk runs, and equals PyTorch's logits.
    import torch

    short = check_inputs(onnx.extractor, "emotion")[1]["input_values"]
    assert short.shape == (1, 36_800)
    with torch.inference_mode():
        expected = torch_model.model(torch.from_numpy(short)).logits.numpy()
    assert np.abs(onnx.model(short).logits - expected).max() < 1e-4


def test_the_numpy_inputs_equal_transformers_feature_extractor(tiny_models):
    from transformers import Wav2Vec2FeatureExtractor

    folder = tiny_models / "tiny-emotion"
    ours = Wav2Vec2Inputs(folder)
    theirs = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    rng = np.random.default_rng(0)
    batch = [(0.1 * rng.standard_normal(24_000) + 0.02).astype(np.float32) for _ in range(3)]
    a = ours(batch, sampling_rate=SAMPLE_RATE)["input_values"]
    b = theirs(batch, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
    assert a.shape == (3, 24_000) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-6
    with pytest.raises(ValueError, match="equal lengths"):
        ours([batch[0], batch[1][:100]], sampling_rate=SAMPLE_RATE)


def test_a_step_with_the_cached_export_imports_neither_torch_nor_transformers(registry,
                                                                              tmp_path):
    registry().get("emotion")  # exports into this test's cache
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from watchme_pipeline.audio import DecodedAudio
        from watchme_pipeline.models.emotion import EmotionSettings, classify_emotion
        from watchme_pipeline.resources import ModelRegistry

        registry = ModelRegistry(profile="tiny", cache_dir={str(tmp_path)!r})
        exports_first = registry.exports_first("emotion")
        loaded = registry.get("emotion")
        x = (0.1 * np.sin(np.arange(48_000) / 7)).astype(np.float32)
        audio = DecodedAudio(samples=x, source_rate=16000, channels=1, source_format="w")
        audio.segments = [(0, 48_000)]
        out = classify_emotion(loaded.model, loaded.extractor, {{"09-00": audio}},
                               EmotionSettings())
        print(json.dumps({{"exports_first": exports_first, "out": out,
                          "torch": "torch" in sys.modules,
                          "transformers": "transformers" in sys.modules}}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["exports_first"] is False
    assert (seen["torch"], seen["transformers"]) == (False, False)
    assert set(seen["out"]["09-00"]) == {"neu", "hap", "ang", "sad"}


def test_without_a_cached_export_the_need_counts_the_export_and_the_refusal_says_so(
        registry):
    fresh = registry()
    assert fresh.exports_first("emotion")
    exporting = fresh.need_mb("emotion")
    with pytest.raises(ModelBudgetError, match=r"to export it to ONNX first: `python -m "
                       r"watchme_pipeline export`") as refused:
        fresh.get("emotion", memory_mb=int(fresh.held_mb() + exporting / 2))
    assert refused.value.figures["kind"] == "emotion"
    assert refused.value.figures["need_mb"] == round(exporting)
    fresh.get("emotion")
    after = registry()
    assert not after.exports_first("emotion") and after.need_mb("emotion") < exporting
