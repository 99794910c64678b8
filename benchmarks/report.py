"""docs/accuracy.md, docs/performance.md and docs/reliability.md, regenerated from
``benchmarks/results/*.json``: every figure on those pages sits in a generated block rendered
here from a results file, with the command that made it. The prose around the blocks says what
is measured and why the rules are what they are; history is in CHANGELOG.md.

Each benchmark calls ``write_page`` after it saves its results; ``python benchmarks/report.py``
rewrites all three; ``tests/test_docs.py`` fails when a page differs from its results.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

from watchme_pipeline.docs import replace_block  # noqa: E402


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _machine(m: dict) -> str:
    cpus = m.get("nproc") or m.get("cpus")
    return f"{cpus} CPUs" + (f", {m['mem_gb']} GB" if m.get("mem_gb") else "")


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- accuracy: make eval -> eval.json ---------------------------------------------------------

def eval_run(e: dict) -> str:
    digests = ", ".join(f"{lang} `{sha[:12]}`" for lang, sha in e["corpus_sha256"].items())
    return (f"`make eval` (`benchmarks/eval_transcripts.py`{' --quick' if e['quick'] else ''}),"
            f" {_machine(e['machine'])}, {e['wall_seconds'] / 60:.0f} min; corpora SHA-256 "
            f"{digests}; Whisper settings `{e['settings']}`.")


def eval_targets(e: dict) -> str:
    """Kana CER (WER for English) of each pipeline engine against the bare faster-whisper +
    VAD with beam 5, group by group: met when not above it, or within a point where both are
    under 3 %."""
    lines = []
    for lang, metric in (("ja", "cer_reading"), ("en", "wer")):
        systems = e["results"].get(lang, {})
        bare = systems.get("bare faster-whisper + VAD, beam 5", {}).get("summary", {})
        for engine in ("faster-whisper", "openai-whisper"):
            ours = systems.get(f"pipeline {engine}", {}).get("summary", {})
            if not ours or not bare:
                continue
            groups = [g for g in ours if g not in ("quiet", "seconds_per_audio_minute")
                      and g in bare]
            missed = [g for g in groups
                      if ours[g][metric] > bare[g][metric]
                      and not (ours[g][metric] < 0.03 and bare[g][metric] < 0.03
                               and ours[g][metric] - bare[g][metric] <= 0.01)]
            lost = ours.get("all", {}).get("lost", 0)
            quiet = ours.get("quiet", {})
            lines.append(
                f"- {lang}, pipeline {engine}: {len(groups) - len(missed)} of {len(groups)} "
                f"groups met" + (f" (missed: {', '.join(missed)})" if missed else "")
                + f"; all cases {100 * ours['all'][metric]:.1f} against "
                f"{100 * bare['all'][metric]:.1f} %; utterances lost {lost}; quiet slots "
                f"{quiet.get('characters', '-')} characters, at most "
                f"{quiet.get('max_seconds_per_slot', '-')} s a slot.")
    return "\n".join(lines)


# -- performance: make bench -> latest.json; make bench-fleet -> upload_cost.json -------------

STAGE_LABELS = {"transcripts": "transcripts (Whisper base)", "event_scores": "event_scores (AST)",
                "emotion_scores": "emotion_scores (wav2vec2)",
                "speakers": "speakers (resemblyzer GE2E)"}


def bench_run(b: dict) -> str:
    day = b["measured_day"]
    kept = b.get("skipped_and_kept_from_before") or []
    return (f"`make bench` (`benchmarks/models.py`), {_machine(b['machine'])}: "
            f"{day['slots']} slots of {day['seconds_per_slot']:.0f} s scaled to the day's 48, "
            f"Whisper `{b['config']['whisper_engine']}` with {b['config']['whisper_weights']} "
            "weights, AST and wav2vec2 with the standard architectures"
            + (f"; kept from the run before: {', '.join(kept)}" if kept else "") + ".")


def bench_stages(b: dict) -> str:
    return _table(["stage", "ours (s per audio minute)", "floor: bare forward passes",
                   "naive: per slot, no gating"],
                  [[STAGE_LABELS.get(k, k), v["s_per_audio_min"],
                    v.get("floor_s_per_audio_min") or "-", v.get("naive_s_per_audio_min") or "-"]
                   for k, v in b["stages"].items()])


def bench_figures(b: dict) -> str:
    q = b.get("with_quantize_events", {})
    peaks = b["peak_rss_mb_per_step_one_model"]
    refused = b.get("in_process_under_one_model_limit", {}).get("refused", {})
    rows = [
        ["mixed day, the model stages", f"{b['day_mixed_s']:.0f} s (+ "
         f"{b['day_mixed_raw_audio_s']} s raw_audio)"],
        ["all-speech day, the model stages", f"{b['day_all_speech_s']:.0f} s"],
        ["the speaker step's work per slot / the transcripts step's, mixed day (issue #33: "
         "<= 0.15)", f"{b.get('speakers_over_transcripts', '-')} (and "
         f"{b.get('speakers_step_start_s', '-')} s once per step process: imports, loading)"],
        ["naive / ours, mixed day", f"{b['naive_over_ours']} (all resident: "
         f"{b['naive_over_ours_all_models']})"],
        ["mixed day with `WATCHME_QUANTIZE=events`", f"{q.get('day_mixed_s', '-')} s, naive / "
         f"ours {q.get('naive_over_ours', '-')}, event stage "
         f"{q.get('event_scores_s_per_audio_min', '-')} s per audio minute"],
        [f"peak RSS, a process per step, {b['memory_limit_mb_one_model']} MB limit",
         ", ".join(f"{k} {v} MB" for k, v in peaks.items())],
        ["the registry's estimate of each step's peak",
         ", ".join(f"{k} {v} MB" for k, v in b["estimated_need_mb_one_model"].items())],
        ["peak RSS, all the models in one process", f"{b['peak_rss_mb_all_models']} MB"],
        [f"one process for the day under {b['memory_limit_mb_one_model']} MB",
         "; ".join(f"{k} refused (needs {v['need_mb']} MB beside {v['held_mb']} held)"
                   for k, v in refused.items()) or "all ran"],
        ["Whisper on a 60 s silent / pink noise / traffic slot",
         f"{b['whisper_silent_60s_s']} / {b['whisper_pink_noise_60s_s']} / "
         f"{b['whisper_traffic_noise_60s_s']} s"],
    ]
    return _table(["figure", "measured"], rows)


def bench_event_runtimes(b: dict) -> str:
    return _table(["event stage runtime", "s per audio minute",
                   "largest probability difference vs PyTorch fp32", "slot top-5 agree",
                   "day's top-10 ranking same"],
                  [[k, v["s_per_audio_min"], v["max_abs_prob_diff"], v["slot_top5_agree"],
                    "yes" if v["day_ranking_top10_same"] else "no"]
                   for k, v in b.get("event_runtimes", {}).items()])


def bench_engines(b: dict) -> str:
    return _table(["Whisper engine", "s per audio minute", "encoder s per audio minute",
                   "decode ms per token", "tokens per 30 s window"],
                  [[k, v["s_per_audio_min"], v["encoder_s_per_audio_min"],
                    v["decode_ms_per_token"], v["tokens_per_30s_chunk"]]
                   for k, v in b.get("engines", {}).items()])


def upload_cost(u: dict) -> str:
    if not u:
        return "(not measured yet: `make bench-fleet`)"
    rows = [[k, u["cpu_s_per_upload"][k], u["wall_s_per_upload"][k]]
            for k in u["cpu_s_per_upload"]]
    return (f"`make bench-fleet` (`benchmarks/upload_cost.py`), {u['uploads']} uploads, "
            f"{u['whisper']} Whisper weights; a run's own overhead {u['run_overhead_wall_s']} s"
            f" wall, {u['run_overhead_cpu_s']} s CPU.\n\n"
            + _table(["how uploads become runs", "CPU s per upload", "wall s per upload"],
                     rows))


# -- accuracy: make speaker-probe -> speaker_probe.json (issue #33) ---------------------------

def speaker_probe(p: dict) -> str:
    if not p:
        return "(not measured yet: `make speaker-probe`)"
    voices = p["voices"]
    parts = [f"`{p['command']}` (`benchmarks/speaker_probe.py`), {p['encoder']}; turns by "
             f"{p['turns']}; {p['test_slots']} test slots and {p['history_slots']} history "
             f"slots a wearer; {p['seconds']:.0f} s."]
    for mixes, m in p["mixes"].items():
        rows = [[rule, f"{s['min']:.1%}", f"{s['mean']:.1%}"]
                + [f"{m['per_wearer'][v][rule]:.1%}" for v in voices]
                for rule, s in m["summary"].items()]
        parts.append(_table([f"mixes: {mixes}", "min", "mean"] + voices, rows))
    return "\n\n".join(parts)


def speaker_accuracy(a: dict) -> str:
    if not a:
        return "(not measured yet: `make speaker-accuracy`)"
    voices = a["voices"]
    head = (f"`{a['command']}` (`benchmarks/speaker_accuracy.py`), {a['encoder']}; history "
            f"{a['history']}, {a['test_slots']} held-out slots a wearer; speech-time accuracy "
            f"of wearer vs other; {a['seconds']:.0f} s (the step's cost: docs/performance.md).")
    rows = [[mixes, rule, f"{s['min']:.1%}", f"{s['mean']:.1%}"]
            + [f"{(m['per_wearer'][v][rule] or 0):.1%}" for v in voices]
            for mixes, m in a["mixes"].items() for rule, s in m["summary"].items()]
    return head + "\n\n" + _table(["mixes", "profile", "worst wearer", "mean"] + voices, rows)


# -- reliability: make reliability -> reliability.json ---------------------------------------

def reliability_campaign(r: dict) -> str:
    if not r:
        return "(not measured yet: `make reliability`)"
    rows = [[o["scenario"], o["injections"], o["runs"], o["recordings_in"], o["rows_out"],
             o["lost"], o["duplicated"], o["failed_with_reason"], o["recovered"]]
            for o in r["outcomes"]]
    head = (f"`make reliability` (`benchmarks/reliability.py {r['device_days']}`: "
            f"{r['device_days']} device-days a scenario), {_machine(r['machine'])}, "
            f"{r['wall_seconds'] / 60:.0f} min.\n\n")
    totals = (f"\n\nscenarios {len(rows)}, lost {sum(o['lost'] for o in r['outcomes'])}, "
              f"duplicated {sum(o['duplicated'] for o in r['outcomes'])}.")
    return head + _table(["scenario", "injections", "runs", "recordings in", "rows out",
                          "lost", "duplicated", "failed with reason", "recovered"],
                         rows) + totals


PAGES: dict[str, dict[str, tuple[str, Callable[[dict], str]]]] = {
    "accuracy.md": {"eval-run": ("eval.json", eval_run),
                    "eval-ja": ("eval.json", lambda e: e["tables"]["ja"]),
                    "eval-en": ("eval.json", lambda e: e["tables"]["en"]),
                    "eval-targets": ("eval.json", eval_targets),
                    "speaker-accuracy": ("speaker_accuracy.json", speaker_accuracy),
                    "speaker-probe": ("speaker_probe.json", speaker_probe)},
    "performance.md": {"bench-run": ("latest.json", bench_run),
                       "bench-stages": ("latest.json", bench_stages),
                       "bench-figures": ("latest.json", bench_figures),
                       "bench-event-runtimes": ("latest.json", bench_event_runtimes),
                       "bench-engines": ("latest.json", bench_engines),
                       "upload-cost": ("upload_cost.json", upload_cost)},
    "reliability.md": {"reliability": ("reliability.json", reliability_campaign)},
}


def render(page: str, text: str) -> str:
    """The page with every generated block rendered from its results file."""
    for name, (results, render_block) in PAGES[page].items():
        text = replace_block(text, name, render_block(_load(results)), f"docs/{page}")
    return text


def write_page(page: str) -> Path:
    path = DOCS / page
    path.write_text(render(page, path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} from benchmarks/results")
    return path


if __name__ == "__main__":
    for page in PAGES:
        write_page(page)
