"""The model registry: budget, eviction order, refusal, and memory really returned."""

import subprocess
import sys
import textwrap

import pytest

from watchme_pipeline.resources import ModelRegistry
from watchme_pipeline.resources.model_registry import ModelBudgetError, cpu_limit


class FakeRegistry(ModelRegistry):
    """Real limit logic over a simulated process: 300 MB of runtime plus what is loaded."""

    def estimate_mb(self, kind: str) -> float:
        return {"whisper": 400, "events": 450, "emotion": 500}[kind]

    def held_mb(self) -> float:
        return 300 + sum(m.size_mb for m in self._loaded.values())

    def runtime_mb(self, kind: str, exporting: bool | None = None) -> float:
        return 0.0

    def exports_first(self, kind: str) -> bool:
        return False

    def source(self, kind: str) -> str:
        return f"fake-{kind}"

    def load_model(self, kind):
        return object(), None


def test_lru_eviction_keeps_the_process_under_its_limit():
    # needs: whisper 400 + 170, events 450 + 310, emotion 500 + 350 (weights + one item)
    registry = FakeRegistry(profile="tiny", cache_dir="/nonexistent")
    registry.get("whisper", memory_mb=1750)
    registry.get("events", memory_mb=1750)
    assert registry.loaded_kinds() == ["whisper", "events"]  # 300 + 570 + 760 = 1630 MB
    registry.get("whisper", memory_mb=1750)  # used again: now the most recent
    registry.get("emotion", memory_mb=1750)  # 850 more: the least recently used (events) goes
    assert registry.loaded_kinds() == ["whisper", "emotion"]
    assert registry.held_mb() == 300 + 570 + 850 <= 1750
    one = FakeRegistry(profile="tiny", cache_dir="/nonexistent")
    for kind in ("whisper", "events", "emotion"):
        one.get(kind, memory_mb=1150)
        assert one.loaded_kinds() == [kind]  # one model at a time
    assert one.loads() == ["whisper", "events", "emotion"]


def test_a_model_that_cannot_fit_is_refused_before_loading():
    registry = FakeRegistry(profile="tiny", cache_dir="/nonexistent")
    with pytest.raises(ModelBudgetError, match=r"model tiny-events \(events\) "
                       r"needs about 760 MB, and the run process already holds 300 MB "
                       r"without it: more than its limit of 700 MB \(set by WATCHME_MEMORY_MB\)"):
        registry.get("events", memory_mb=700)
    assert registry.loaded_kinds() == [] and registry.loads() == []


def test_batch_sizes_follow_what_the_limit_leaves():
    registry = FakeRegistry(profile="tiny", cache_dir="/nonexistent")
    registry.get("whisper", memory_mb=2000)  # holds 870 MB
    assert registry.batch_size("whisper", 2000) == 4  # room for 6 items: the most worth having
    assert registry.batch_size("whisper", 1300) == 2  # 430 MB left: two 170 MB windows
    assert registry.batch_size("whisper", 900) == 1  # never below one
    assert registry.batch_size("whisper", 2000, requested=8) == 6  # asked for more than fits
    assert registry.batch_size("whisper", None) == 4


def test_standard_sizes_are_estimated_before_download():
    registry = ModelRegistry(profile="standard", cache_dir="/nonexistent",
                             whisper_engine="openai-whisper")
    assert 250 < registry.estimate_mb("whisper") < 350  # whisper base: 74 M weights, fp32
    assert registry.model_id("events") == "MIT/ast-finetuned-audioset-10-10-0.4593"
    assert 1 <= cpu_limit()


@pytest.mark.slow  # a whole graph run / a fresh process with a real model
def test_unloading_returns_the_memory(tmp_path):
    """In a fresh process: RSS grows by about the model's size on load and falls back after
    release (references dropped, gc, malloc_trim)."""
    script = textwrap.dedent(f"""
        import json
        import torch
        from transformers import Wav2Vec2ForSequenceClassification
        from watchme_pipeline.resources.model_registry import ModelRegistry

        def rss_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

        class PlainLoad(ModelRegistry):
            def load_model(self, kind):
                return Wav2Vec2ForSequenceClassification.from_pretrained(self.source(kind)), None

        path = {str(tmp_path / "w2v")!r}
        registry = PlainLoad(profile="standard", emotion_model=path, cache_dir=path)
        base = rss_mb()
        model = registry.get("emotion").model
        with torch.inference_mode():  # touch every weight, as a real step does
            model(torch.zeros(1, 16000))
        del model
        loaded = rss_mb()
        registry.release("emotion")
        released = rss_mb()
        print(json.dumps({{"base": base, "loaded": loaded, "released": released,
                          "estimate": registry.estimate_mb("emotion")}}))
    """)
    build = ("from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification as M; "
             f"M(Wav2Vec2Config(num_labels=4)).save_pretrained({str(tmp_path / 'w2v')!r})")
    subprocess.run([sys.executable, "-c", build], check=True, timeout=300, capture_output=True)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip().splitlines()[-1]
    import json

    rss = json.loads(out)
    grown = rss["loaded"] - rss["base"]
    assert grown > 250, rss  # wav2vec2-base: about 360 MB of fp32 weights
    assert rss["estimate"] > 300
    assert rss["released"] - rss["base"] < 0.25 * grown, rss  # most of it came back
    print(f"RSS: base {rss['base']:.0f} MB, loaded {rss['loaded']:.0f} MB, released "
          f"{rss['released']:.0f} MB")


def test_each_step_pod_asks_for_more_than_its_step_was_measured_to_hold():
    """The pods' requests are derived from the registry's estimates (Stage.memory_mb); make
    bench's measured peaks (a process per step) must fit under them."""
    import json
    from pathlib import Path

    from watchme_pipeline.deployment import POD_MEMORY

    latest = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                         / "latest.json").read_text())
    for step, peak_mb in latest["peak_rss_mb_per_step_one_model"].items():
        request, limit = (int(v.removesuffix("Mi")) for v in POD_MEMORY[step])
        assert peak_mb < request < limit, step

