"""Model-stage benchmark: the three stages over a generated device-day with the standard
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
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from watchme_pipeline.resources.model_registry import (  # noqa: E402
    DEFAULT_QUANTIZE,
    DEFAULT_WHISPER_ENGINE,
)

CACHE = ROOT / "data" / "bench-models"
RESULTS = ROOT / "benchmarks" / "results"


# -- models and audio ------------------------------------------------------------------------

def real_whisper():
    """The real Whisper base weights when `make weights` has fetched them, else None."""
    from watchme_pipeline.models.weights import cached_whisper_base

    return cached_whisper_base(ROOT / "data" / "models")


def build_standard_models() -> dict[str, str]:
    """Whisper base (the real weights after `make weights`, else random), AST base (527
    labels), wav2vec2-base (4 labels) with random weights."""
    import torch

    from watchme_pipeline.models.tiny import build_ct2_whisper

    paths = {"whisper": CACHE / "whisper-base.pt", "events": CACHE / "ast-base",
             "emotion": CACHE / "wav2vec2-base", "whisper-ct2": CACHE / "whisper-base-ct2"}
    CACHE.mkdir(parents=True, exist_ok=True)
    real = real_whisper()
    if real is not None:
        paths["whisper"], paths["whisper-ct2"] = real.openai_checkpoint, real.ct2_dir
    else:
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


def day_audio(slots: int, seconds: float, all_speech: bool):
    """Decoded audio of a day: 20/48 speech, 14/48 noise, 14/48 silence (or all speech)."""
    import soundfile as sf

    from watchme_pipeline.audio import decode
    from watchme_pipeline.sample_data import _noise, _speech
    rng = np.random.default_rng(3)
    n_speech = slots if all_speech else round(slots * 20 / 48)
    n_noise = 0 if all_speech else round(slots * 14 / 48)
    out = {}
    for i in range(slots):
        if i < n_speech:
            x, _ = _speech("おはようございます。今日はとても良い天気ですね。", seconds, 16000, rng)
        elif i < n_speech + n_noise:
            x = _noise(i % 3, seconds, 16000, rng)
        else:
            x = (rng.standard_normal(int(seconds * 16000)) * 3e-4).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format="WAV")
        out[f"{i // 2:02d}-{i % 2 * 30:02d}"] = decode(buf.getvalue(), f"slot{i}")
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- one measurement (in a child process) ----------------------------------------------------

def make_registry(paths: dict[str, str], budget_mb: int, engine: str, quantize: str):
    from watchme_pipeline.resources import ModelRegistry
    return ModelRegistry(
        profile="standard", event_model=paths["events"], emotion_model=paths["emotion"],
        whisper_model=paths["whisper-ct2" if engine == "faster-whisper" else "whisper"],
        whisper_engine=engine, quantize=quantize, memory_budget_mb=budget_mb,
        cache_dir=str(CACHE))


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


def measure(mode: str, slots: int, seconds: float, all_speech: bool, budget_mb: int,
            engine: str, quantize: str) -> dict:
    import torch

    from watchme_pipeline.models.emotion import classify_emotion
    from watchme_pipeline.models.events import classify_events
    from watchme_pipeline.models.transcribe import WINDOW_SAMPLES as CHUNK_SAMPLES
    from watchme_pipeline.models.transcribe import transcribe
    paths = build_standard_models()
    if mode in ("naive", "engines", "quant"):  # references: openai-whisper, fp32
        engine, quantize = "openai-whisper", ""
    registry = make_registry(paths, budget_mb, engine, quantize)
    audios = day_audio(slots, seconds, all_speech)
    for a in audios.values():
        a.speech()  # the VAD, once, as the asset layer's shared decode does
    stages: dict[str, float] = {}
    rss_after: dict[str, float] = {}
    if mode == "ours":
        rss_after["audio_decoded"] = round(peak_rss_mb())
        for name, kind, fn in [("transcripts", "whisper", lambda m: transcribe(m.model, audios)),
                               ("event_scores", "events",
                                lambda m: classify_events(m.model, m.extractor, audios)),
                               ("emotion_scores", "emotion",
                                lambda m: classify_emotion(m.model, m.extractor, audios))]:
            t0 = time.perf_counter()
            fn(registry.get(kind))
            stages[name] = time.perf_counter() - t0
            rss_after[name] = round(peak_rss_mb())  # the process peak so far
    elif mode == "floor":  # bare forward passes over the same audio, batched
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
        for name, eng, quant, decode in [
                ("openai-whisper fp32", "openai-whisper", "", decode_openai),
                ("openai-whisper int8-dynamic", "openai-whisper", "whisper", decode_openai),
                ("faster-whisper int8", "faster-whisper", "", _decode_faster)]:
            reg = make_registry(paths, 3000, eng, quant)
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
    elif mode == "quant":  # int8 dynamic quantization: speed and the score difference
        import whisper

        from watchme_pipeline.models.emotion import classify_emotion as emo
        from watchme_pipeline.models.events import WINDOW_SAMPLES
        from watchme_pipeline.models.events import classify_events as ev
        from watchme_pipeline.resources.model_registry import quantize_linear_int8
        speech = dict(list(audios.items())[:4])
        minutes = sum(a.duration_s for a in speech.values()) / 60
        windows = [a.samples[:WINDOW_SAMPLES] for a in speech.values()]
        for kind, run, probs in [
                ("events", lambda m: ev(m.model, m.extractor, speech),
                 lambda m: torch.sigmoid(m.model(**m.extractor(
                     windows, sampling_rate=16000, return_tensors="pt")).logits)),
                ("emotion", lambda m: emo(m.model, m.extractor, speech),
                 lambda m: torch.softmax(m.model(torch.from_numpy(np.stack(
                     [w[:160000] for w in windows]))).logits, -1))]:
            out = {}
            for quant in ("", kind):
                reg = make_registry(paths, 3000, "openai-whisper", quant)
                m = reg.get(kind)
                run(m)  # warm up
                t0 = time.perf_counter()
                run(m)
                elapsed = time.perf_counter() - t0
                with torch.inference_mode():
                    out[quant or "fp32"] = (probs(m), elapsed, peak_rss_mb())
                reg.release_all()
            (p32, t32, _), (p8, t8, _) = out["fp32"], out[kind]
            top32 = p32.topk(5 if kind == "events" else 1).indices
            top8 = p8.topk(5 if kind == "events" else 1).indices
            agree = np.mean([len(set(a.tolist()) & set(b.tolist())) / len(a)
                             for a, b in zip(top32, top8)])
            stages[kind] = {"fp32_s_per_audio_min": round(t32 / minutes, 2),
                            "int8_s_per_audio_min": round(t8 / minutes, 2),
                            "max_abs_prob_diff": round(float((p32 - p8).abs().max()), 4),
                            "top_labels_agree": round(float(agree), 3)}
        reg = make_registry(paths, 3000, "openai-whisper", "")
        model = reg.get("whisper").model
        mel = torch.stack([whisper.log_mel_spectrogram(whisper.pad_or_trim(
            torch.from_numpy(a.samples[:CHUNK_SAMPLES]))) for a in speech.values()])
        with torch.inference_mode():
            model.encoder(mel[:1])  # warm up
            t0 = time.perf_counter()
            a32 = model.encoder(mel)
            t32 = time.perf_counter() - t0
            q = quantize_linear_int8(model).encoder
            q(mel[:1])
            t0 = time.perf_counter()
            a8 = q(mel)
            t8 = time.perf_counter() - t0
        chunk_min = len(speech) * CHUNK_SAMPLES / 16000 / 60
        stages["whisper_encoder"] = {"fp32_s_per_audio_min": round(t32 / chunk_min, 2),
                                     "int8_s_per_audio_min": round(t8 / chunk_min, 2),
                                     "relative_output_diff": round(float(
                                         (a32 - a8).norm() / a32.norm()), 4)}
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


def child(mode: str, args, all_speech: bool = False, budget_mb: int = 1000) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--slots", str(args.slots),
           "--seconds", str(args.seconds), "--budget", str(budget_mb),
           "--engine", args.engine, "--quantize", args.quantize]
    if all_speech:
        cmd.append("--all-speech")
    print(f"running {mode}{' (all speech)' if all_speech else ''}, budget {budget_mb} MB ...",
          flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slots", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--all-speech", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--engine", default=DEFAULT_WHISPER_ENGINE)
    parser.add_argument("--quantize", default=DEFAULT_QUANTIZE)
    parser.add_argument("--only", help="comma list of extra measurements to run alone "
                        "(gate, engines, quant); updates latest.json")
    parser.add_argument("--only-gate", action="store_true",
                        help="measure the silent/noise slots only and update latest.json")
    args = parser.parse_args()
    if args.only_gate:
        args.only = "gate"
    if args.only:
        latest = json.loads((RESULTS / "latest.json").read_text())
        for mode in args.only.split(","):
            stages = child(mode, args, budget_mb=600)["stages"]
            latest.update(stages if mode == "gate" else {mode: stages})
        (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
        print(json.dumps(latest, indent=2))
        return
    if args.child:
        print(json.dumps(measure(args.child, args.slots, args.seconds, args.all_speech,
                                 args.budget, args.engine, args.quantize)))
        return
    build_standard_models()
    one = child("ours", args, budget_mb=600)  # room for one model at a time
    allm = child("ours", args, budget_mb=3000)  # all three resident
    speech = child("ours", args, all_speech=True, budget_mb=600)
    floor = child("floor", args, budget_mb=600)
    naive = child("naive", args, budget_mb=3000)
    gate = child("gate", args, budget_mb=600)
    engines = child("engines", args, budget_mb=3000)
    quant = child("quant", args, budget_mb=3000)
    # The same mixed day with AST and wav2vec2 quantized to int8 (WATCHME_QUANTIZE): a
    # configuration choice, reported next to the default.
    saved, args.quantize = args.quantize, "events,emotion"
    int8 = child("ours", args, budget_mb=600)
    args.quantize = saved
    scale = 48 * 60 / (args.slots * args.seconds)  # to a full day of 48 one-minute slots
    result = {
        "machine": {"nproc": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                             * os.sysconf("SC_PHYS_PAGES")
                                                             / 2**30, 1)},
        "measured_day": {"slots": args.slots, "seconds_per_slot": args.seconds},
        "config": {"whisper_engine": args.engine, "quantize": args.quantize or "none",
                   "whisper_weights": "real (make weights)" if real_whisper() else "random"},
        "day_mixed_s": round(one["total_s"] * scale, 1),
        "day_all_speech_s": round(speech["total_s"] * scale, 1),
        "floor_ratio": round(one["total_s"] / floor["total_s"], 2),
        "naive_over_ours": round(naive["total_s"] / one["total_s"], 2),
        "peak_rss_mb_one_model": round(one["peak_rss_mb"]),
        "peak_rss_mb_all_models": round(allm["peak_rss_mb"]),
        **gate["stages"],
        "stages": {name: {"s_per_audio_min": round(s / one["audio_min"], 2),
                          "floor_s_per_audio_min": round(floor["stages"][name]
                                                         / floor["audio_min"], 2),
                          "naive_s_per_audio_min": round(naive["stages"][name]
                                                         / naive["audio_min"], 2)}
                   for name, s in one["stages"].items()},
        "engines": engines["stages"],
        "quant": quant["stages"],
        "with_quantize_events_emotion": {
            "day_mixed_s": round(int8["total_s"] * scale, 1),
            "naive_over_ours": round(naive["total_s"] / int8["total_s"], 2),
            "peak_rss_mb_one_model": round(int8["peak_rss_mb"]),
            "stages": {name: round(s / int8["audio_min"], 2)
                       for name, s in int8["stages"].items()}},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\n| stage | ours s/audio-min | floor | naive |\n|---|---|---|---|")
    for name, st in result["stages"].items():
        print(f"| {name} | {st['s_per_audio_min']} | {st['floor_s_per_audio_min']} | "
              f"{st['naive_s_per_audio_min']} |")
    print(f"\nday (48 x 60 s, scaled from {args.slots} x {args.seconds:g} s): mixed "
          f"{result['day_mixed_s']} s, all speech {result['day_all_speech_s']} s; "
          f"ours/floor {result['floor_ratio']}; naive/ours {result['naive_over_ours']}; "
          f"peak RSS {result['peak_rss_mb_one_model']} MB (one model), "
          f"{result['peak_rss_mb_all_models']} MB (all three)")


if __name__ == "__main__":
    main()
