"""The event model on ONNX Runtime: export, check against PyTorch, cache, fallback, int8, and
no model time on silent windows. Tiny AST (the real architecture, random weights)."""

import warnings

import numpy as np
import pytest
import torch

from watchme_pipeline.audio import SAMPLE_RATE, DecodedAudio
from watchme_pipeline.models import onnx_runtime
from watchme_pipeline.models.events import WINDOW_SAMPLES, EventSettings, classify_events
from watchme_pipeline.models.onnx_runtime import OnnxClassifier, check_input
from watchme_pipeline.resources import ModelRegistry


@pytest.fixture
def registry(tiny_models, tmp_path):
    """The tiny models, with an ONNX cache of this test's own."""
    for name in ("tiny-ast",):
        (tmp_path / name).symlink_to(tiny_models / name)
    return lambda **kw: ModelRegistry(profile="tiny", cache_dir=str(tmp_path),
                                      **{"event_runtime": "onnxruntime", **kw})


def logits(model, extractor, windows):
    inputs = extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    with torch.inference_mode():
        return model(**inputs).logits.numpy()


def test_onnx_runtime_matches_pytorch_and_names_itself(registry):
    onnx = registry().get("events")
    torch_model = registry(event_runtime="pytorch").get("events")
    assert isinstance(onnx.model, OnnxClassifier)
    assert onnx.model_id == "tiny-events+onnxruntime-fp32"
    assert torch_model.model_id == "tiny-events"
    assert onnx.model.export.max_abs_diff <= onnx_runtime.TOLERANCE
    rng = np.random.default_rng(0)
    windows = [(0.1 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32)
               for _ in range(3)]
    diff = np.abs(logits(onnx.model, onnx.extractor, windows)
                  - logits(torch_model.model, torch_model.extractor, windows)).max()
    assert diff <= 1e-4
    # Cached: the next load builds no PyTorch model and exports nothing.
    path = onnx.model.export.path
    stamp = path.stat().st_mtime_ns
    again = registry().get("events")
    assert again.model.export.path == path and path.stat().st_mtime_ns == stamp


def test_attention_is_exported_plain_and_the_pytorch_model_keeps_its_own(registry):
    import onnx

    loaded = registry().get("events")
    graph = onnx.load(str(loaded.model.export.path)).graph
    ops = [n.op_type for n in graph.node]
    layers = loaded.model.config.num_hidden_layers
    # One softmax a layer; no NaN guard, and no mask added to the scores.
    assert (ops.count("Softmax"), ops.count("IsNaN"), ops.count("Where")) == (layers, 0, 0)
    assert "-plain-fp32.onnx" in loaded.model.export.path.name
    torch_model = registry(event_runtime="pytorch").get("events").model
    before = torch_model.config._attn_implementation
    with onnx_runtime.plain_attention(torch_model):
        assert torch_model.config._attn_implementation == onnx_runtime.PLAIN_ATTENTION
    assert torch_model.config._attn_implementation == before == "sdpa"


def test_a_corrupt_export_is_found_by_its_hash_and_rebuilt(registry):
    first = registry().get("events").model.export.path
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    first.write_bytes(bytes(data))
    assert onnx_runtime.cached_export(first.parents[1] / "tiny-ast", first.parent, "fp32",
                                      "tiny-ast") is None  # found by its hash
    rebuilt = registry().get("events").model.export
    assert rebuilt.path == first and rebuilt.max_abs_diff <= onnx_runtime.TOLERANCE
    assert onnx_runtime.cached_export(first.parents[1] / "tiny-ast", first.parent, "fp32",
                                      "tiny-ast") is not None  # valid again


def test_an_export_that_disagrees_falls_back_to_pytorch_with_one_warning(registry,
                                                                          monkeypatch):
    monkeypatch.setattr(onnx_runtime, "TOLERANCE", -1.0)  # any difference is too much
    with pytest.warns(RuntimeWarning, match=r"tiny-ast: ONNX logits differ from PyTorch's by "
                      r"[0-9.e+-]+ \(> -1\): events runs on PyTorch"):
        loaded = registry().get("events")
    assert not isinstance(loaded.model, OnnxClassifier)
    # The rows say so, and the next load does not try again.
    assert registry().model_id("events") == "tiny-events"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not isinstance(registry().get("events").model, OnnxClassifier)


def test_int8_per_channel_is_an_option_and_close_to_fp32(registry):
    fp32 = registry().get("events")
    int8 = registry(quantize="events").get("events")
    assert int8.model_id == "tiny-events+onnxruntime-int8"
    inputs = {k: torch.from_numpy(v) for k, v in check_input(fp32.extractor).items()}
    p32 = torch.sigmoid(fp32.model(**inputs).logits).numpy()
    p8 = torch.sigmoid(int8.model(**inputs).logits).numpy()
    assert 0 < np.abs(p32 - p8).max() < 0.05


def test_silent_windows_get_silence_without_the_model(registry):
    loaded = registry().get("events")
    calls = []
    real = loaded.model.__call__

    class Counting:
        config = loaded.model.config

        def __call__(self, **inputs):
            calls.append(inputs["input_values"].shape[0])
            return real(**inputs)

    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    quiet = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    audio = DecodedAudio(np.concatenate([tone, quiet, tone]), 16000, 1, "WAV")
    silent = DecodedAudio(np.zeros(3 * WINDOW_SAMPLES, dtype=np.float32), 16000, 1, "WAV")
    out = classify_events(Counting(), loaded.extractor, {"a": audio, "b": silent},
                          EventSettings())
    assert sum(calls) == 2  # the two windows with sound, nothing else
    assert [w["time"] for w in out["a"].windows] == [0.0, 10.24, 20.48]
    assert out["a"].windows[1]["events"] == [{"label": "Silence", "score": 1.0}]
    assert out["a"].windows[0]["events"] != out["a"].windows[1]["events"]
    assert out["b"].top == [{"label": "Silence", "score": 1.0}]
    assert all(w["events"] == [{"label": "Silence", "score": 1.0}] for w in out["b"].windows)
