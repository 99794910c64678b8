"""Accuracy of the transcripts stage with the real Whisper base weights (`make eval`).

    python benchmarks/eval_transcripts.py [--quick] [--lang en,ja] [--out eval.json]

Two corpora of our own, composed into 60 s slots: English spoken by espeak-ng
(tests/speech_corpus.py) and everyday Japanese spoken by Kokoro's neural voices
(tests/japanese_corpus.py). On the same audio, five systems:

- the pipeline (``models.transcribe``: Silero VAD windows, Whisper's keep rules, the stage's
  settings) on both engines;
- bare faster-whisper ``transcribe(vad_filter=True)`` with beam 5 and greedy (its own
  fallback);
- bare openai-whisper ``transcribe`` (greedy at temperature 0: its sampling fallback takes
  minutes a slot on noise).

Per case group: English WER; Japanese CER on the katakana reading and on the written form;
utterances lost (under half their words, or their reading's characters, out); characters and
known hallucinations on quiet slots; seconds of model time per audio minute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import japanese_corpus as ja_corpus  # noqa: E402
import speech_corpus as en_corpus  # noqa: E402

from watchme_pipeline.audio import decode  # noqa: E402
from watchme_pipeline.models.transcribe import WhisperSettings, transcribe  # noqa: E402
from watchme_pipeline.models.weights import fetch_whisper_base  # noqa: E402
from watchme_pipeline.resources.model_registry import ModelRegistry, cpu_limit  # noqa: E402

CACHE = ROOT / "data" / "models"
# (name, engine, kind, beam)
SYSTEMS = (
    ("pipeline faster-whisper", "faster-whisper", "pipeline", None),
    ("pipeline openai-whisper", "openai-whisper", "pipeline", None),
    ("bare faster-whisper + VAD, beam 5", "faster-whisper", "bare", 5),
    ("bare faster-whisper + VAD, greedy", "faster-whisper", "bare", 1),
    ("bare openai-whisper, greedy", "openai-whisper", "bare", 1),
)
GROUPS = {
    "en": ("seam", "soft", "noise", "continuous", "far-apart", "clean"),
    "ja": ("apart", "seam", "continuous", "conversation", "noise", "soft", "far-apart",
           "clean"),
}


def run(model, kind: str, engine: str, beam: int | None, case, language: str
        ) -> tuple[str, float]:
    # Every system hears the slot's file as the pipeline decodes it (16-bit WAV): beam
    # search flips words on the quantisation alone (寝坊/寝棒 on the float source).
    audio = decode(case.wav_bytes(), f"{case.name}.wav")  # the real decode path
    t0 = time.perf_counter()
    if kind == "pipeline":
        text = transcribe(model, {case.name: audio},
                          WhisperSettings(language=language))[case.name].text
        return text, time.perf_counter() - t0
    if engine == "openai-whisper":
        text = model.transcribe(audio.samples, language=language, fp16=False,
                                temperature=0.0)["text"]
    else:
        segments, _ = model.transcribe(audio.samples, language=language, beam_size=beam,
                                       vad_filter=True)
        text = "".join(s.text for s in segments)
    return text.strip(), time.perf_counter() - t0


def score_row(case, text: str, seconds: float) -> dict:
    row = {"case": case.name, "group": case.group, "lang": case.lang,
           "reference": case.reference, "text": text, "seconds": round(seconds, 3),
           "utterances": len(case.references)}
    if case.group == "quiet":
        row["characters"] = len(ja_corpus.written(text))
        row["hallucination"] = ja_corpus.hallucinated(text)
    elif case.lang == "ja":
        row["lost"] = ja_corpus.utterances_lost(case.references, text)
    else:
        row["lost"] = int(en_corpus.lost(case.reference, text))
    return row


def summarize(rows: list[dict], lang: str) -> dict:
    out: dict = {}
    speech = [r for r in rows if r["group"] != "quiet"]
    hard = [r for r in speech if r["group"] != "clean"]
    for group in (*GROUPS[lang], "hard", "all"):
        sel = hard if group == "hard" else speech if group == "all" else [
            r for r in speech if r["group"] == group]
        if not sel:
            continue
        refs, hyps = [r["reference"] for r in sel], [r["text"] for r in sel]
        entry = {"lost": sum(r["lost"] for r in sel),
                 "utterances": sum(r["utterances"] for r in sel), "cases": len(sel)}
        if lang == "en":
            entry["wer"] = round(en_corpus.error_rate(refs, hyps), 4)
        else:
            entry["cer_reading"] = round(ja_corpus.cer(refs, hyps, "reading"), 4)
            entry["cer_written"] = round(ja_corpus.cer(refs, hyps, "written"), 4)
        out[group] = entry
    quiet = [r for r in rows if r["group"] == "quiet"]
    if quiet:
        out["quiet"] = {"characters": sum(r["characters"] for r in quiet),
                        "hallucinations": sum(r["hallucination"] for r in quiet),
                        "max_seconds_per_slot": round(max(r["seconds"] for r in quiet), 3),
                        "seconds_by_case": {r["case"]: r["seconds"] for r in quiet},
                        "cases": len(quiet)}
    if speech:
        out["seconds_per_audio_minute"] = round(
            sum(r["seconds"] for r in speech) / (len(speech) * en_corpus.SLOT_S / 60), 3)
    return out


def corpus_digest(cases) -> str:
    """SHA-256 of every slot file of a corpus, in order: rows kept from an earlier run are
    comparable only when they heard the same audio."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(case.name.encode())
        digest.update(case.wav_bytes())
    return digest.hexdigest()


def save(out: Path, results: dict, corpus: dict[str, str], quick: bool, t0: float) -> None:
    tables = {lang: table(results, lang) for lang in results if results[lang]}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({
        "machine": {"cpus": cpu_limit(), "platform": platform.platform()},
        "quick": quick, "wall_seconds": round(time.perf_counter() - t0, 1),
        "settings": repr(WhisperSettings()), "corpus_sha256": corpus, "tables": tables,
        "results": results,
    }, ensure_ascii=False, indent=1))
    tmp.rename(out)
    if out.resolve() == (ROOT / "benchmarks" / "results" / "eval.json").resolve():
        from report import write_page

        write_page("accuracy.md")  # docs/accuracy.md from what was just measured


def evaluate(quick: bool, langs: list[str], only: str, out: Path) -> dict:
    """Runs the systems whose name contains ``only`` (all: ""); the others' rows are kept
    from ``out`` (the bare models do not change with the pipeline) where it heard the same
    corpus (its SHA-256), else rerun. Saved after each."""
    t0 = time.perf_counter()
    fetch_whisper_base(CACHE)
    corpora = {}
    if "en" in langs:
        corpora["en"] = en_corpus.build_cases(quick=quick)
    if "ja" in langs:
        corpora["ja"] = ja_corpus.build_cases(quick=quick)
    results: dict = {lang: {} for lang in corpora}
    corpus = {lang: corpus_digest(cases) for lang, cases in corpora.items()}
    rerun_all: set[str] = set()  # corpora every system hears again
    if only and out.is_file():  # keep what is not rerun: other systems, other corpora
        old = json.loads(out.read_text())
        same = old.get("quick") == quick
        heard = old.get("corpus_sha256", {}) if same else {}
        # A corpus that sounds different now (a voice, a seed, a case changed) was not what
        # the old rows heard: every system runs on it again.
        rerun_all = {lang for lang in corpora if heard.get(lang) != corpus[lang]}
        for lang, systems in (old["results"].items() if same else ()):
            if lang not in corpora:
                results[lang], corpus[lang] = systems, heard.get(lang)
            elif lang not in rerun_all:
                results[lang] = {n: r for n, r in systems.items() if only not in n}
        for lang in sorted(rerun_all):
            print(f"{lang}: not the corpus {out.name} heard: every system runs on it")
    for engine in ("faster-whisper", "openai-whisper"):
        registry = ModelRegistry(profile="standard", cache_dir=str(CACHE), whisper_engine=engine)
        loaded = registry.get("whisper")
        for name, sys_engine, kind, beam in SYSTEMS:
            if sys_engine != engine:
                continue
            for lang, cases in corpora.items():
                if only not in name and lang not in rerun_all:
                    continue
                rows = []
                for case in cases:
                    text, seconds = run(loaded.model, kind, engine, beam, case, lang)
                    rows.append(score_row(case, text, seconds))
                    print(f"{lang} {name:36} {case.name:20} {seconds:6.2f}s  {text[:60]}",
                          flush=True)
                results[lang][name] = {"summary": summarize(rows, lang), "cases": rows,
                                       "model": loaded.model_id}
                save(out, results, corpus, quick, t0)
        registry.release_all()
    return results


def table(results: dict, lang: str) -> str:
    """Markdown: one row per case group, one column per system."""
    systems = [name for name, *_ in SYSTEMS if name in results[lang]]
    lines = ["| " + " | ".join(["cases", *systems]) + " |", "|" + "---|" * (1 + len(systems))]

    def cell(s: dict | None) -> str:
        if not s:
            return "-"
        lost = f", lost {s['lost']}/{s['utterances']}" if s["lost"] else ""
        if lang == "en":
            return f"{100 * s['wer']:.1f} %{lost}"
        return f"{100 * s['cer_reading']:.1f} / {100 * s['cer_written']:.1f} %{lost}"

    for group in (*GROUPS[lang], "hard", "all"):
        row = [results[lang][n]["summary"].get(group) for n in systems]
        if any(row):
            label = f"**{group}**" if group in ("hard", "all") else group
            lines.append("| " + " | ".join([label, *map(cell, row)]) + " |")
    quiet = [results[lang][n]["summary"].get("quiet", {}) for n in systems]
    lines.append("| quiet: characters (hallucinations); most s a slot | " + " | ".join(
        f"{q.get('characters', '-')} ({q.get('hallucinations', '-')}); "
        f"{q.get('max_seconds_per_slot', '-')} s" for q in quiet) + " |")
    lines.append("| s of model time per audio minute | " + " | ".join(
        str(results[lang][n]["summary"].get("seconds_per_audio_minute", "-"))
        for n in systems) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the quick sets make test runs")
    parser.add_argument("--lang", default="en,ja", help="corpora: en, ja or both")
    parser.add_argument("--only", default="", help="run only the systems whose name has this "
                        "(e.g. pipeline); the others' rows are kept from --out")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval.json"))
    args = parser.parse_args()
    langs = args.lang.split(",")
    if "en" in langs and not en_corpus.espeak_available():
        sys.exit("eval: espeak-ng is needed for the English corpus (apt-get install espeak-ng)")
    if "ja" in langs and (why := ja_corpus.available()):
        sys.exit(f"eval: {why}")
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = evaluate(args.quick, langs, args.only, out)
    for lang in results:
        if not results[lang]:
            continue
        unit = "WER" if lang == "en" else "CER, katakana reading / written form"
        print(f"\n{lang} ({unit})\n{table(results, lang)}")
    print(f"wrote {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
