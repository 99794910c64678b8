"""Model-stage benchmark: the model stages over a generated device-day with the standard
architectures (random weights when the real ones are not here: cost depends on architecture).

    python benchmarks/models.py [--slots 48] [--seconds 60]

Each measurement runs in its own process (clean peak RSS). Writes
benchmarks/results/latest.json and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from report import write_page  # noqa: E402

from watchme_pipeline.memory import peak_rss_mb  # noqa: E402
from watchme_pipeline.models.catalog import (  # noqa: E402
    DEFAULT_EMOTION_RUNTIME,
    DEFAULT_EVENT_RUNTIME,
    DEFAULT_WHISPER_ENGINE,
)

CACHE = ROOT / "data" / "bench-models"
RESULTS = ROOT / "benchmarks" / "results"


# -- models and audio ------------------------------------------------------------------------

def real_whisper():
    """The real Whisper base weights when `make weights` has fetched them, else None."""
    from watchme_pipeline.models.weights import cached_whisper_base

    return cached_whisper_base(ROOT / "data" / "models")


def standard_model_paths() -> dict[str, Path]:
    """Where the standard architectures are (the real Whisper base after `make weights`)."""
    paths = {"whisper": CACHE / "whisper-base.pt", "events": CACHE / "ast-base",
             "emotion": CACHE / "wav2vec2-base", "whisper-ct2": CACHE / "whisper-base-ct2"}
    real = real_whisper()
    if real is not None:
        paths["whisper"], paths["whisper-ct2"] = real.openai_checkpoint, real.ct2_dir
    return paths


def build_standard_models() -> dict[str, str]:
    """Whisper base (the real weights after `make weights`, else random), AST base (527
    labels), wav2vec2-base (4 labels) with random weights; built once, here (a measured step
    only reads them, and imports no more than the pipeline does)."""
    paths = standard_model_paths()
    if all(p.exists() for p in paths.values()):
        return {k: str(v) for k, v in paths.items()}
    import torch

    from watchme_pipeline.models.tiny import build_ct2_whisper

    CACHE.mkdir(parents=True, exist_ok=True)
    if not paths["whisper-ct2"].exists():
        build_ct2_whisper(paths["whisper-ct2"], d_model=512, layers=6, heads=8)  # int8
    torch.manual_seed(0)
    if not paths["whisper"].exists():
        from dataclasses import asdict

        from whisper.model import ModelDimensions, Whisper
        dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8,
                               n_audio_layer=6, n_vocab=51865, n_text_ctx=448, n_text_state=512,
                               n_text_head=8, n_text_layer=6)
        torch.save({"dims": asdict(dims), "model_state_dict": Whisper(dims).state_dict()},
                   paths["whisper"])
    if not paths["events"].exists():
        from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

        from watchme_pipeline.models.tiny import audioset_labels
        labels = audioset_labels()
        ASTForAudioClassification(ASTConfig(num_labels=527, id2label=dict(enumerate(labels)),
                                            label2id={v: k for k, v in enumerate(labels)})
                                  ).save_pretrained(paths["events"])
        ASTFeatureExtractor().save_pretrained(paths["events"])
    if not paths["emotion"].exists():
        from transformers import (
            Wav2Vec2Config,
            Wav2Vec2FeatureExtractor,
            Wav2Vec2ForSequenceClassification,
        )

        from watchme_pipeline.models.tiny import EMOTION_LABELS
        Wav2Vec2ForSequenceClassification(Wav2Vec2Config(
            num_labels=4, id2label=dict(enumerate(EMOTION_LABELS)),
            label2id={v: k for k, v in enumerate(EMOTION_LABELS)})).save_pretrained(
                paths["emotion"])
        Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(paths["emotion"])
    return {k: str(v) for k, v in paths.items()}


def day_wavs(slots: int, seconds: float, all_speech: bool) -> dict[str, bytes]:
    """A day's WAV files: 20/48 speech, 14/48 noise, 14/48 silence (or all speech)."""
    import soundfile as sf

    from watchme_pipeline.sample_data import _noise, _speech
    rng = np.random.default_rng(3)
    spoken: dict = {}
    n_speech = slots if all_speech else round(slots * 20 / 48)
    n_noise = 0 if all_speech else round(slots * 14 / 48)
    out = {}
    for i in range(slots):
        if i < n_speech:
            x, _ = _speech(i, ("espeak-ng", "synthetic"), spoken, seconds, 16000, rng)
        elif i < n_speech + n_noise:
            x = _noise(i % 3, seconds, 16000, rng)
        else:
            x = (rng.standard_normal(int(seconds * 16000)) * 3e-4).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format="WAV")
        out[f"{i // 2:02d}-{i % 2 * 30:02d}"] = buf.getvalue()
    return out


def day_audio(slots: int, seconds: float, all_speech: bool):
    """The same day decoded up front, with its speech segments (the references' input)."""
    from watchme_pipeline.audio import decode

    audios = {slot: decode(data, slot) for slot, data in day_wavs(slots, seconds,
                                                                   all_speech).items()}
    for a in audios.values():
        a.speech()
    return audios


# -- one measurement (in a child process) ----------------------------------------------------

def make_registry(paths: dict[str, str], engine: str, event_runtime: str = "pytorch",
                  quantize: str = "", emotion_runtime: str = DEFAULT_EMOTION_RUNTIME):
    from watchme_pipeline.resources import ModelRegistry
    return ModelRegistry(
        profile="standard", event_model=paths["events"], emotion_model=paths["emotion"],
        whisper_model=paths["whisper-ct2" if engine == "faster-whisper" else "whisper"],
        whisper_engine=engine, cache_dir=str(CACHE), event_runtime=event_runtime,
        quantize=quantize, emotion_runtime=emotion_runtime)


def run_day(paths: dict[str, str], engine: str, memory_mb: int, slots: int, seconds: float,
            all_speech: bool, steps: tuple[str, ...] = ("raw_audio", "speakers", "transcripts",
                                                        "event_scores", "emotion_scores"),
            workdir: str | None = None, quantize: str = "") -> dict:
    """The pipeline's own path over a day: the files in a store, raw_audio's registration
    (decode and VAD), then each model stage through the stage runner under the process
    memory limit, as a run does (decoded a few slots at a time, batches sized by the limit)."""
    import logging
    import tempfile
    from zoneinfo import ZoneInfo

    from watchme_pipeline.partitions import DeviceDay
    from watchme_pipeline.resources import LocalAudioStore, SqlResultStore
    from watchme_pipeline.resources.model_registry import ModelBudgetError
    from watchme_pipeline.settings import PipelineSettings
    from watchme_pipeline.stage_runner import run_slot_stage
    from watchme_pipeline.stages import model_stages
    from watchme_pipeline.stages.raw_audio import find_recordings

    tmp = Path(workdir or tempfile.mkdtemp(prefix="bench-day-"))
    store = LocalAudioStore(root=str(tmp / "audio"))
    results = SqlResultStore(database_url=f"sqlite:///{tmp / 'results.db'}")
    day = DeviceDay("bench", "2025-07-18")
    # The deployment's defaults: AST on ONNX Runtime (fp32, or int8 with quantize="events").
    registry = make_registry(paths, engine, DEFAULT_EVENT_RUNTIME, quantize)
    settings = PipelineSettings(memory_mb=memory_mb)
    log = logging.getLogger("bench")
    stages: dict[str, float] = {}
    rss_after: dict[str, float] = {"imports": round(peak_rss_mb())}
    raw_audio_s = 0.0
    if "raw_audio" in steps:
        for slot, data in day_wavs(slots, seconds, all_speech).items():
            store.write(f"files/bench/2025-07-18/{slot}/audio.wav", data)
        t0 = time.perf_counter()
        find_recordings(store, results, day, ZoneInfo("Asia/Tokyo"), log)
        raw_audio_s = time.perf_counter() - t0
        rss_after["raw_audio"] = round(peak_rss_mb())
    batches = {}
    refused: dict[str, dict] = {}  # stages the limit refused: figures, not a traceback
    estimated: dict[str, float] = {}  # what the registry expects the process to reach
    compute: dict[str, float] = {}
    for stage in model_stages():
        if stage.name not in steps:
            continue
        estimated[stage.name] = round(registry.held_mb() + registry.need_mb(stage.model_kind))
        t0 = time.perf_counter()
        try:
            outcome = run_slot_stage(stage, day, audio_store=store, result_store=results,
                                     registry=registry, settings=settings, log=log)
        except ModelBudgetError as exc:
            refused[stage.name] = exc.figures
            continue
        stages[stage.name] = time.perf_counter() - t0
        compute[stage.name] = outcome.stage_seconds  # the slots' work, not the step's start
        batches[stage.name] = outcome.batch_size
        rss_after[stage.name] = round(peak_rss_mb())
    audio_min = slots * seconds / 60
    return {"stages": stages, "compute_s": compute, "raw_audio_s": raw_audio_s,
            "audio_min": audio_min,
            "peak_rss_mb": peak_rss_mb(), "peak_rss_after": rss_after, "batch_sizes": batches,
            "loaded_at_end": registry.loaded_kinds(), "memory_mb": memory_mb,
            "refused": refused, "need_mb": estimated}


def encode_chunks(model, engine: str, chunks: list[np.ndarray], batch: int) -> None:
    """Whisper's encoder alone over 30 s chunks (padded), ``batch`` at a time, on the engine's
    own features: the bare forward pass that transcription cannot go below."""
    import torch
    import whisper

    from watchme_pipeline.models.transcribe import WINDOW_SAMPLES as CHUNK_SAMPLES
    padded = [np.pad(c, (0, CHUNK_SAMPLES - len(c))).astype(np.float32) for c in chunks]
    with torch.inference_mode():
        for i in range(0, len(padded), batch):
            group = padded[i:i + batch]
            if engine == "faster-whisper":
                model.encode(np.stack([model.feature_extractor(c)[:, :3000] for c in group]))
            else:
                model.encoder(torch.stack([whisper.log_mel_spectrogram(torch.from_numpy(c))
                                           for c in group]))


def measure(mode: str, slots: int, seconds: float, all_speech: bool, memory_mb: int,
            engine: str, quantize: str = "") -> dict:
    from watchme_pipeline.models.transcribe import WINDOW_SAMPLES as CHUNK_SAMPLES
    from watchme_pipeline.models.transcribe import transcribe
    paths = {k: str(v) for k, v in standard_model_paths().items()}  # built by the parent
    if mode == "ours":
        day = run_day(paths, engine, memory_mb, slots, seconds, all_speech, quantize=quantize)
        return {"mode": mode, **day, "total_s": sum(day["stages"].values())}
    if mode.startswith("step:"):  # one step in its own process, as a pod or multiprocess runs
        _, step, workdir = mode.split(":", 2)
        day = run_day(paths, engine, memory_mb, slots, seconds, all_speech, (step,), workdir,
                      quantize)
        return {"mode": mode, **day, "total_s": sum(day["stages"].values())}
    import torch

    if mode in ("naive", "engines"):  # references: openai-whisper, fp32
        engine = "openai-whisper"
    # The naive reference runs every model on PyTorch, as the fleet did.
    registry = make_registry(paths, engine, emotion_runtime="pytorch" if mode == "naive"
                             else DEFAULT_EMOTION_RUNTIME)
    audios = day_audio(slots, seconds, all_speech)
    stages: dict[str, float] = {}
    rss_after: dict[str, float] = {}
    if mode == "floor":  # bare forward passes over the same audio, batched
        from watchme_pipeline.models.emotion import CHUNK_SAMPLES as W2V_CHUNK
        from watchme_pipeline.models.events import WINDOW_SAMPLES
        with torch.inference_mode():
            m = registry.get("whisper").model
            t0 = time.perf_counter()
            chunks = [a.samples[s:s + CHUNK_SAMPLES] for a in audios.values()
                      for s in range(0, len(a.samples), CHUNK_SAMPLES)]
            encode_chunks(m, engine, chunks, batch=8)
            stages["transcripts"] = time.perf_counter() - t0
            ev = registry.get("events")
            t0 = time.perf_counter()
            windows = [a.samples[s:s + WINDOW_SAMPLES] for a in audios.values()
                       for s in range(0, len(a.samples), WINDOW_SAMPLES)]
            for i in range(0, len(windows), 8):
                ev.model(**ev.extractor(windows[i:i + 8], sampling_rate=16000,
                                        return_tensors="pt"))
            stages["event_scores"] = time.perf_counter() - t0
            em = registry.get("emotion")
            t0 = time.perf_counter()
            pieces = [a.samples[s:s + W2V_CHUNK] for a in audios.values()
                      for s in range(0, len(a.samples), W2V_CHUNK)]
            pieces = [p for p in pieces if len(p) == W2V_CHUNK]
            for i in range(0, len(pieces), 6):
                em.model(torch.from_numpy(np.stack(pieces[i:i + 6])))
            stages["emotion_scores"] = time.perf_counter() - t0
    elif mode == "naive":  # each slot alone, no gating, no batching, all models resident
        import whisper

        from watchme_pipeline.models.events import WINDOW_SAMPLES
        models = {k: registry.get(k) for k in ("whisper", "events", "emotion")}
        options = whisper.DecodingOptions(language="ja", temperature=0.0, sample_len=96,
                                          without_timestamps=True, fp16=False)
        stages = dict.fromkeys(("transcripts", "event_scores", "emotion_scores"), 0.0)
        with torch.inference_mode():
            for a in audios.values():
                t0 = time.perf_counter()
                for s in range(0, len(a.samples), CHUNK_SAMPLES):
                    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(
                        torch.from_numpy(np.ascontiguousarray(a.samples[s:s + CHUNK_SAMPLES]))))
                    whisper.decode(models["whisper"].model, mel, options)
                stages["transcripts"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                ev = models["events"]
                for s in range(0, len(a.samples), WINDOW_SAMPLES):
                    ev.model(**ev.extractor([a.samples[s:s + WINDOW_SAMPLES]],
                                            sampling_rate=16000, return_tensors="pt"))
                stages["event_scores"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                models["emotion"].model(torch.from_numpy(a.samples[None, :]))
                stages["emotion_scores"] += time.perf_counter() - t0
    elif mode == "engines":  # the same speech windows through each Whisper engine
        from watchme_pipeline.models.transcribe import (
            WhisperSettings,
            Window,
            _decode_faster,
            slot_windows,
        )
        from watchme_pipeline.models.transcribe import _decode_openai as decode_openai
        settings = WhisperSettings()
        chunks = [Window(k, x, "ja") for k, a in audios.items()
                  for x in slot_windows(a, settings)]
        minutes = sum(len(w.audio) for w in chunks) / 16000 / 60
        for name, eng, decode in [
                ("openai-whisper fp32", "openai-whisper", decode_openai),
                ("faster-whisper int8", "faster-whisper", _decode_faster)]:
            reg = make_registry(paths, eng)
            model = reg.get("whisper").model
            decode(model, chunks[:1], settings).__next__()  # warm up
            t0 = time.perf_counter()
            tokens = [sum(len(r.tokens) for r in rs) for _, rs in decode(model, chunks,
                                                                         settings)]
            total = time.perf_counter() - t0
            t0 = time.perf_counter()  # the encoder alone, so decoding can be put per token
            encode_chunks(model, eng, [w.audio for w in chunks], batch=1)
            encoder = time.perf_counter() - t0
            stages[name] = {"s_per_audio_min": round(total / minutes, 2),
                            "encoder_s_per_audio_min": round(encoder / minutes, 2),
                            "decode_ms_per_token": round(1000 * (total - encoder)
                                                         / max(1, sum(tokens)), 1),
                            "tokens_per_30s_chunk": round(float(np.mean(tokens)), 1)}
            reg.release_all()
    elif mode == "events":  # the event stage per runtime and precision, on the same windows
        from watchme_pipeline.models.events import EventSettings, classify_events, daily_summary
        sound = {k: a for k, a in audios.items() if k < "10-00"}  # speech and noise slots
        minutes = sum(a.duration_s for a in sound.values()) / 60
        results = {}
        for name, runtime, quant in [("pytorch fp32", "pytorch", ""),
                                     ("onnxruntime fp32", "onnxruntime", ""),
                                     ("onnxruntime int8", "onnxruntime", "events")]:
            reg = make_registry(paths, engine, runtime, quant)
            m = reg.get("events")
            one = dict(list(sound.items())[:1])
            classify_events(m.model, m.extractor, one, EventSettings())  # warm up
            t0 = time.perf_counter()
            out = classify_events(m.model, m.extractor, sound, EventSettings())
            elapsed = time.perf_counter() - t0
            from watchme_pipeline.models.onnx_runtime import check_input
            with torch.inference_mode():
                probs = torch.sigmoid(m.model(**{k: torch.as_tensor(v) for k, v in
                                                 check_input(m.extractor).items()}).logits)
            results[name] = (out, elapsed, probs.numpy()[0], m.model_id)
            reg.release_all()
        ref_out, _, ref_p, _ = results["pytorch fp32"]
        ref_rank = [e["event"] for e in daily_summary({k: v.top for k, v in
                                                       ref_out.items()})[0][:10]]
        for name, (out, elapsed, p, model_id) in results.items():
            top5 = [set(e["label"] for e in out[k].top) for k in sound]
            ref5 = [set(e["label"] for e in ref_out[k].top) for k in sound]
            agree = np.mean([len(a & b) / max(1, len(b)) for a, b in zip(top5, ref5)])
            rank = [e["event"] for e in daily_summary({k: v.top for k, v in
                                                       out.items()})[0][:10]]
            stages[name] = {"s_per_audio_min": round(elapsed / minutes, 2), "model": model_id,
                            "max_abs_prob_diff": float(f"{np.abs(p - ref_p).max():.2e}"),
                            "slot_top5_agree": round(float(agree), 3),
                            "day_ranking_top10_same": rank == ref_rank}
    elif mode == "gate":  # what a 60 s silent or noise-only slot costs Whisper
        import soundfile as sf

        from watchme_pipeline.audio import decode
        from watchme_pipeline.sample_data import _noise
        model = registry.get("whisper").model
        rng = np.random.default_rng(9)
        for name, x in [("whisper_silent_60s_s",
                         (rng.standard_normal(960_000) * 3e-4).astype(np.float32)),
                        ("whisper_pink_noise_60s_s", _noise(0, 60, 16000, rng)),
                        ("whisper_traffic_noise_60s_s", _noise(1, 60, 16000, rng))]:
            buf = io.BytesIO()
            sf.write(buf, x, 16000, format="WAV")
            t0 = time.perf_counter()
            slot = {"00-00": decode(buf.getvalue(), name)}
            text = transcribe(model, slot)["00-00"].text
            stages[name] = round(time.perf_counter() - t0, 3)
            assert text == "", text
    audio_min = sum(a.duration_s for a in audios.values()) / 60
    return {"mode": mode, "stages": stages,
            "total_s": sum(v for v in stages.values() if isinstance(v, float)),
            "audio_min": audio_min, "peak_rss_mb": peak_rss_mb(), "peak_rss_after": rss_after,
            "loaded_at_end": registry.loaded_kinds()}


def child(mode: str, args, all_speech: bool = False, memory_mb: int = 1200) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--slots", str(args.slots),
           "--seconds", str(args.seconds), "--memory", str(memory_mb), "--engine", args.engine,
           "--quantize", getattr(args, "quantize", "")]
    if all_speech:
        cmd.append("--all-speech")
    print(f"running {mode}{' (all speech)' if all_speech else ''}, process limit "
          f"{memory_mb} MB ...", flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_onnx(paths: dict[str, str]) -> None:
    """Export AST (fp32 and int8) and wav2vec2 (fp32) to ONNX once, here, so the measured
    steps find them cached (what `python -m watchme_pipeline export` does for a deployment)."""
    for kind, quantize in (("events", ""), ("events", "events"), ("emotion", "")):
        registry = make_registry(paths, DEFAULT_WHISPER_ENGINE, "onnxruntime", quantize)
        t0 = time.perf_counter()
        print(f"ONNX export: {registry.get(kind).model_id} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        registry.release_all()


def steps_in_processes(args, all_speech: bool = False) -> dict:
    """The day with each step in its own process under the limit (what the multiprocess and
    k8s executors do): one model resident at a time, each step's peak RSS measured."""
    import tempfile

    workdir = tempfile.mkdtemp(prefix="bench-steps-")
    steps = {step: child(f"step:{step}:{workdir}", args, all_speech, memory_mb=args.memory)
             for step in ("raw_audio", "speakers", "transcripts", "event_scores",
                          "emotion_scores")}
    stages = {name: r["stages"][name] for name, r in steps.items()
              if name != "raw_audio" and name in r["stages"]}
    refused = {name: r["refused"][name] for name, r in steps.items() if name in r["refused"]}
    for name, figures in refused.items():
        print(f"{name}: refused by the {figures['limit_mb']} MB limit: {figures['model']} "
              f"needs about {figures['need_mb']} MB beside the {figures['held_mb']} MB held",
              flush=True)
    return {"stages": stages, "total_s": sum(stages.values()), "refused": refused,
            "compute_s": {name: r.get("compute_s", {})[name] for name, r in steps.items()
                          if name in r.get("compute_s", {})},
            "raw_audio_s": steps["raw_audio"]["raw_audio_s"],
            "audio_min": steps["raw_audio"]["audio_min"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in steps.values()),
            "peak_rss_after": {name: round(r["peak_rss_mb"]) for name, r in steps.items()},
            "batch_sizes": {name: steps[name]["batch_sizes"].get(name) for name in stages},
            "estimates_mb": {name: r.get("need_mb", {}).get(name) for name, r in steps.items()
                             if name != "raw_audio"},
            "loaded_at_end": {name: r["loaded_at_end"] for name, r in steps.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--memory", type=int, default=1200,
                        help="the process limit (WATCHME_MEMORY_MB) of the one-model run")
    parser.add_argument("--all-speech", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--engine", default=DEFAULT_WHISPER_ENGINE)
    parser.add_argument("--quantize", default="", help="'events': AST on ONNX Runtime int8")
    parser.add_argument("--skip", default="", help="comma list of extra measurements to leave "
                        "out of a full run (speech, floor, engines); kept from latest.json")
    parser.add_argument("--only", help="comma list of measurements to run alone (ours, gate, "
                        "engines, events); updates latest.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.slots, args.seconds, args.all_speech,
                                 args.memory, args.engine, args.quantize)))
        return
    if args.only:
        export_onnx(build_standard_models())
        latest = json.loads((RESULTS / "latest.json").read_text())
        for mode in args.only.split(","):
            result = child(mode, args, memory_mb=args.memory)
            latest.update(result["stages"] if mode == "gate" else {f"only_{mode}": result})
        (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
        print(json.dumps(latest, indent=2))
        write_page("performance.md")
        return
    export_onnx(build_standard_models())
    one = steps_in_processes(args)  # one model resident at a time: a process per step
    allm = child("ours", args, memory_mb=4000)  # room for all of them resident
    naive = child("naive", args, memory_mb=4000)
    skip = set(filter(None, args.skip.split(",")))
    previous = json.loads((RESULTS / "latest.json").read_text()) if (
        RESULTS / "latest.json").exists() else {}
    speech = None if "speech" in skip else child("ours", args, all_speech=True, memory_mb=4000)
    # One process under the one-model limit: the registry must release or refuse, not overrun.
    limited = child("ours", args, memory_mb=args.memory)
    in_process_one = {"refused": limited["refused"]} if limited["refused"] else "fits"
    floor = None if "floor" in skip else child("floor", args)
    gate = child("gate", args)
    engines = None if "engines" in skip else child("engines", args)
    runtimes = child("events", args)  # the event stage per runtime, on the same windows
    saved, args.quantize = getattr(args, "quantize", ""), "events"
    int8 = steps_in_processes(args)  # the day with AST on ONNX Runtime int8
    args.quantize = saved
    scale = 48 * 60 / (args.slots * args.seconds)  # to a full day of 48 one-minute slots
    result = {
        "machine": {"nproc": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                             * os.sysconf("SC_PHYS_PAGES")
                                                             / 2**30, 1)},
        "measured_day": {"slots": args.slots, "seconds_per_slot": args.seconds},
        "config": {"whisper_engine": args.engine,
                   "whisper_weights": "real (make weights)" if real_whisper() else "random"},
        "day_mixed_s": round(one["total_s"] * scale, 1),
        "day_mixed_raw_audio_s": round(one["raw_audio_s"] * scale, 1),
        "day_all_speech_s": (round(speech["total_s"] * scale, 1) if speech
                             else previous.get("day_all_speech_s")),
        "floor_ratio": (round(one["total_s"] / floor["total_s"], 2) if floor
                        else previous.get("floor_ratio")),
        "naive_over_ours": round(naive["total_s"] / one["total_s"], 2),
        "memory_limit_mb_one_model": args.memory,
        "peak_rss_mb_one_model": round(one["peak_rss_mb"]),
        "refused_one_model": one["refused"],
        "estimated_need_mb_one_model": one["estimates_mb"],
        "peak_rss_mb_per_step_one_model": one["peak_rss_after"],
        "batch_sizes_one_model": one["batch_sizes"],
        "loaded_at_end_one_model": one["loaded_at_end"],
        "peak_rss_mb_all_models": round(allm["peak_rss_mb"]),
        "peak_rss_after_all_models": allm["peak_rss_after"],
        "loaded_at_end_all_models": allm["loaded_at_end"],
        "naive_over_ours_all_models": round(naive["total_s"] / allm["total_s"], 2),
        "in_process_under_one_model_limit": in_process_one,
        **gate["stages"],
        "stages": {name: {"s_per_audio_min": round(s / one["audio_min"], 2),
                          "floor_s_per_audio_min": (
                              round(floor["stages"][name] / floor["audio_min"], 2) if floor
                              else previous.get("stages", {}).get(name, {}).get(
                                  "floor_s_per_audio_min")),
                          "naive_s_per_audio_min": (round(naive["stages"][name]
                                                          / naive["audio_min"], 2)
                                                    if name in naive["stages"] else None)}
                   for name, s in one["stages"].items()},
        # Issue #33's cost target, per slot: the speaker step's work beside the transcripts
        # step's on the same day; and its start (imports, loading, librosa's first call),
        # once per step process.
        "speakers_over_transcripts": (round(one["compute_s"]["speakers"]
                                            / one["compute_s"]["transcripts"], 3)
                                      if "speakers" in one.get("compute_s", {}) else None),
        "speakers_step_start_s": (round(one["stages"]["speakers"]
                                        - one["compute_s"]["speakers"], 2)
                                  if "speakers" in one.get("compute_s", {}) else None),
        "engines": engines["stages"] if engines else previous.get("engines"),
        "event_runtimes": runtimes["stages"],
        "with_quantize_events": {
            "day_mixed_s": round(int8["total_s"] * scale, 1),
            "naive_over_ours": round(naive["total_s"] / int8["total_s"], 2),
            "peak_rss_mb_per_step": int8["peak_rss_after"],
            "event_scores_s_per_audio_min": round(int8["stages"]["event_scores"]
                                                  / int8["audio_min"], 2)},
        "skipped_and_kept_from_before": sorted(skip),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    write_page("performance.md")  # docs/performance.md from what was just measured
    print("\n| stage | ours s/audio-min | floor | naive |\n|---|---|---|---|")
    for name, st in result["stages"].items():
        print(f"| {name} | {st['s_per_audio_min']} | {st['floor_s_per_audio_min']} | "
              f"{st['naive_s_per_audio_min']} |")
    print(f"\nday (48 x 60 s, scaled from {args.slots} x {args.seconds:g} s): mixed "
          f"{result['day_mixed_s']} s (+ raw_audio {result['day_mixed_raw_audio_s']} s), all "
          f"speech {result['day_all_speech_s']} s; ours/floor {result['floor_ratio']}; "
          f"naive/ours {result['naive_over_ours']}; peak RSS "
          f"{result['peak_rss_mb_one_model']} MB under a {args.memory} MB limit (one model at "
          f"a time, a process per step), {result['peak_rss_mb_all_models']} MB with all the models "
          f"resident in one process")


if __name__ == "__main__":
    main()
