"""Accuracy of the transcripts stage with the real Whisper base weights (`make eval`).

    python benchmarks/eval_transcripts.py [--quick] [--out benchmarks/results/eval.json]

On the speech corpus (tests/speech_corpus.py: espeak-ng English and Japanese in 60 s slots),
per engine: the pipeline (``models.transcribe``: Silero VAD windows, Whisper's keep rules)
and the bare model on the same audio (openai-whisper ``transcribe`` at temperature 0;
faster-whisper ``transcribe(vad_filter=True)``, greedy, with its fallback). English WER and
Japanese CER per case group and in total, utterances lost (a case with under half its
words/characters out), words emitted on quiet slots, and seconds of model time per slot.
Language: the case's own (``en``/``ja``), and ``auto`` on clean English, all Japanese and
the quiet slots.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import speech_corpus as corpus  # noqa: E402

from watchme_pipeline.audio import decode  # noqa: E402
from watchme_pipeline.models.transcribe import WhisperSettings, transcribe  # noqa: E402
from watchme_pipeline.models.weights import fetch_whisper_base  # noqa: E402
from watchme_pipeline.resources.model_registry import ModelRegistry, cpu_limit  # noqa: E402
from watchme_pipeline.settings import load_settings  # noqa: E402

ENGINES = ("faster-whisper", "openai-whisper")
GROUPS = ("seam", "soft", "noise", "continuous", "far-apart", "clean")
HARD = ("seam", "soft", "noise", "continuous", "far-apart")


def run_pipeline(model, case: corpus.Case, language: str | None) -> tuple[str, float]:
    audio = decode(case.wav_bytes(), f"{case.name}.wav")  # the real decode path
    t0 = time.perf_counter()
    result = transcribe(model, {case.name: audio}, WhisperSettings(language=language))
    return result[case.name].text, time.perf_counter() - t0


def run_bare(model, engine: str, case: corpus.Case, language: str | None
             ) -> tuple[str, float]:
    t0 = time.perf_counter()
    if engine == "openai-whisper":
        # Greedy (the anchor): with the default fallback, sampling best-of-5 on
        # noise takes minutes a slot.
        text = model.transcribe(case.audio, language=language, fp16=False,
                                temperature=0.0)["text"]
    else:
        segments, _ = model.transcribe(case.audio, language=language, beam_size=1,
                                       vad_filter=True)
        text = " ".join(s.text for s in segments)
    return text.strip(), time.perf_counter() - t0


def auto_subset(case: corpus.Case) -> bool:
    return case.group == "quiet" or case.lang == "ja" or case.group == "clean"


def summarize(rows: list[dict]) -> dict:
    """Per language and group: error rate, utterances lost, cases; quiet words; time."""
    out: dict = {}
    for lang in ("en", "ja"):
        for group in (*GROUPS, "hard", "all"):
            sel = [r for r in rows if r["lang"] == lang and (
                r["group"] == group or (group == "hard" and r["group"] in HARD)
                or (group == "all" and r["group"] != "quiet"))]
            if not sel:
                continue
            out[f"{lang}/{group}"] = {
                "error_rate": round(corpus.error_rate([r["reference"] for r in sel],
                                                      [r["text"] for r in sel], lang), 4),
                "lost": sum(r["lost"] for r in sel), "cases": len(sel),
            }
    quiet = [r for r in rows if r["group"] == "quiet"]
    if quiet:
        out["quiet"] = {"words": sum(len(r["text"].split()) for r in quiet),
                        "max_seconds_per_slot": round(max(r["seconds"] for r in quiet), 3),
                        "cases": len(quiet)}
    speech = [r for r in rows if r["group"] != "quiet"]
    if speech:
        out["seconds_per_audio_minute"] = round(
            sum(r["seconds"] for r in speech) / (len(speech) * corpus.SLOT_S / 60), 3)
    return out


def evaluate(quick: bool) -> dict:
    cache = load_settings().model_cache
    fetch_whisper_base(cache)
    cases = corpus.build_cases(quick=quick)
    results: dict = {}
    for engine in ENGINES:
        registry = ModelRegistry(profile="standard", cache_dir=str(cache), whisper_engine=engine)
        loaded = registry.get("whisper")
        for kind in ("pipeline", "bare"):
            for mode in ("fixed", "auto"):
                name = f"{kind}/{engine}/{mode}"
                rows = []
                for case in cases:
                    if mode == "auto" and not auto_subset(case):
                        continue
                    language = None if mode == "auto" else (case.lang or "en")
                    if kind == "pipeline":
                        text, seconds = run_pipeline(loaded.model, case, language)
                    else:
                        text, seconds = run_bare(loaded.model, engine, case, language)
                    lang = case.lang
                    rows.append({
                        "case": case.name, "group": case.group, "lang": lang,
                        "reference": case.reference, "text": text,
                        "seconds": round(seconds, 3),
                        "lost": bool(lang) and corpus.lost(case.reference, text, lang),
                    })
                    print(f"{name:32} {case.name:18} {seconds:6.2f}s  {text[:70]}",
                          flush=True)
                results[name] = {"summary": summarize(rows), "cases": rows,
                                 "model": loaded.model_id}
        registry.release_all()
    return results


def table(results: dict) -> str:
    """Markdown: one row per case group, pipeline beside the bare anchor, per engine."""
    head = ["group"]
    for engine in ENGINES:
        head += [f"{engine} pipeline", f"{engine} bare"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(name: str, key: str) -> str:
        s = results.get(name, {}).get("summary", {}).get(key)
        if not s:
            return "-"
        unit = "WER" if key.startswith("en") else "CER"
        return f"{100 * s['error_rate']:.1f} % {unit}, lost {s['lost']}/{s['cases']}"

    for mode in ("fixed", "auto"):
        for lang in ("en", "ja"):
            for group in (*GROUPS, "hard", "all"):
                key = f"{lang}/{group}"
                if not any(key in r.get("summary", {}) for n, r in results.items()
                           if n.endswith(mode)):
                    continue
                label = f"{lang} {group}" + (" (auto)" if mode == "auto" else "")
                row = [label]
                for engine in ENGINES:
                    row += [cell(f"pipeline/{engine}/{mode}", key),
                            cell(f"bare/{engine}/{mode}", key)]
                lines.append("| " + " | ".join(row) + " |")
    quiet = ["quiet slots: words, max s per slot"]
    speed = ["s per audio minute (speech slots)"]
    for engine in ENGINES:
        for kind in ("pipeline", "bare"):
            s = results.get(f"{kind}/{engine}/fixed", {}).get("summary", {})
            q = s.get("quiet", {})
            quiet.append(f"{q.get('words', '-')} words, {q.get('max_seconds_per_slot', '-')} s")
            speed.append(str(s.get("seconds_per_audio_minute", "-")))
    lines.append("| " + " | ".join(quiet) + " |")
    lines.append("| " + " | ".join(speed) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one case per kind")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval.json"))
    args = parser.parse_args()
    if not corpus.espeak_available():
        sys.exit("eval: espeak-ng is needed for the speech corpus (apt-get install espeak-ng)")
    t0 = time.perf_counter()
    results = evaluate(args.quick)
    md = table(results)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "machine": {"cpus": cpu_limit(), "platform": platform.platform()},
        "quick": args.quick, "wall_seconds": round(time.perf_counter() - t0, 1),
        "table": md, "results": results,
    }, ensure_ascii=False, indent=1))
    tmp.rename(out)
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
