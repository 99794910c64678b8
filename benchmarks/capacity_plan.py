"""Regenerate the capacity table of docs/scaling.md from benchmarks/results/latest.json.

    python benchmarks/capacity_plan.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "benchmarks" / "results" / "latest.json"
DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"

UTILISATION = 0.7  # plan pods to be busy 70 % of the day
POD_CPUS = 2  # one step pod = the benchmark machine (2 cores)
RUNS_PER_SECOND = 1.0  # the daemon's run launching, a known Dagster limit
PARTITIONS_PER_RUN = 10  # BackfillPolicy.multi_run(max_partitions_per_run=10)
RECORDINGS_PER_DAY = 48


def pod_request(peak_mb: float) -> int:
    return int(math.ceil(peak_mb / 50) * 50)


def pod_limit(peak_mb: float) -> int:
    return int(math.ceil(pod_request(peak_mb) * 1.25 / 50) * 50)


def plan(bench: dict) -> str:
    day_s = bench["day_mixed_s"]  # wall seconds for one device-day on a 2-core pod
    rss = bench["peak_rss_mb_one_model"]
    est = bench.get("estimated_need_mb_one_model") or {}
    per_pod_day = 86_400 * UTILISATION / day_s  # device-days one pod finishes per day
    lines = [
        f"Inputs (from `{LATEST.relative_to(ROOT)}`): a mixed device-day takes **{day_s:.0f} s**"
        f" on one {POD_CPUS}-core pod (all-speech day {bench['day_all_speech_s']:.0f} s), peak"
        f" RSS **{rss} MB** with one model resident, a process per step"
        f" ({bench['peak_rss_mb_all_models']} MB with all three in one process); pods planned"
        f" at {UTILISATION:.0%} busy.",
        "",
        "Step pods (`stages.py` `pod_memory`, what `deployment.pod_tags` asks for): the request"
        " is the larger of the step's measured peak RSS and the registry's estimate of it"
        " (what the process holds plus the model's need: under a smaller `WATCHME_MEMORY_MB`"
        " the registry would refuse the model), rounded up to 50 MiB, and `WATCHME_MEMORY_MB`"
        " in the pod is set to it; the limit is 25 % more.",
        "",
        "| step | measured peak RSS | registry's estimate | request | limit |",
        "|---|---|---|---|---|",
        *[f"| {step} | {mb} MB | {est.get(step, '-')}{' MB' if step in est else ''} |"
          f" {pod_request(max(mb, est.get(step, 0)))}Mi |"
          f" {pod_limit(max(mb, est.get(step, 0)))}Mi |"
          for step, mb in bench["peak_rss_mb_per_step_one_model"].items()],
        "",
        f"- Devices per core: **{86_400 / day_s / POD_CPUS:.1f}** (48 recordings a day each,"
        f" cores fully busy); **{per_pod_day:.1f}** devices per {POD_CPUS}-core pod at"
        f" {UTILISATION:.0%}.",
        "",
        "| devices | pods (2 cores each) | cores | pod memory | runs/day, one run per"
        " device-day | runs/day, batched 10/run | 30-day backfill (pod-hours) |"
        " backfill wall time on those pods |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for devices in (1_000, 10_000, 100_000):
        pods = math.ceil(devices / per_pod_day)
        backfill_pod_h = devices * 30 * day_s / 3600
        lines.append(
            f"| {devices:,} | {pods:,} | {pods * POD_CPUS:,} | {pods * rss / 1024:,.0f} GiB |"
            f" {devices:,} | {math.ceil(devices / PARTITIONS_PER_RUN):,} |"
            f" {backfill_pod_h:,.0f} | {backfill_pod_h / pods / UTILISATION:,.0f} h |")
    sensor_runs = RECORDINGS_PER_DAY  # a run per device-day each time a file lands
    limit_devices = int(86_400 * RUNS_PER_SECOND / sensor_runs)
    lines += [
        "",
        f"- Queue after a day of backlog (every device-day of one day waiting): N device-days;"
        f" batched {PARTITIONS_PER_RUN} per run that is N/{PARTITIONS_PER_RUN} queued runs,"
        f" e.g. {100_000 // PARTITIONS_PER_RUN:,} for 100,000 devices, which the daemon launches"
        f" in {100_000 / PARTITIONS_PER_RUN / RUNS_PER_SECOND / 60:.0f} min and the pods"
        f" above drain in about a day ({30 * 24 / 30:.0f} h per backlog day at the sizes above"
        f" is the same arithmetic as one day of the backfill column).",
        f"- Run launching: the sensor requests a device-day's run when new uploads land (queue"
        f" mode: once its oldest is WATCHME_RUN_DELAY_S old, covering every upload of that"
        f" day so far); a device uploads every 30 minutes, so that is still up to"
        f" {sensor_runs} runs per device a day, and the daemon launches about"
        f" {RUNS_PER_SECOND:g} run/s: per-device runs stop scaling near"
        f" **{limit_devices:,} devices**. Beyond that, runs must carry many devices: a run per"
        f" (date, group of devices) and delay, e.g. 100 groups x (1,440 / 10 min) ="
        f" {100 * 144:,} runs/day for any fleet size (group partitions: the next step, not"
        f" built yet).",
    ]
    return "\n".join(lines)


def main() -> None:
    import sys

    bench = json.loads((Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST).read_text())
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + plan(bench) + "\n" + text[end:])
    print(plan(bench))


if __name__ == "__main__":
    main()
