"""Regenerate the capacity table of docs/scaling.md from benchmarks/results/latest.json.

    python benchmarks/capacity_plan.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "benchmarks" / "results" / "latest.json"
UPLOAD_COST = ROOT / "benchmarks" / "results" / "upload_cost.json"
DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"

UTILISATION = 0.7  # plan pods to be busy 70 % of the day
POD_CPUS = 2  # one step pod = the benchmark machine (2 cores)
RUNS_PER_SECOND = 1.0  # the daemon's run launching, a known Dagster limit
PARTITIONS_PER_RUN = 10  # BackfillPolicy.multi_run(max_partitions_per_run=10)
RECORDINGS_PER_DAY = 48
UPLOAD_EVERY_S = 1800  # a device uploads a recording every 30 minutes
MAX_PARTITIONS = 100_000  # Dagster's recommendation per asset
RUN_DELAY_S = 180  # WATCHME_RUN_DELAY_S's default


def pod_memory() -> dict[str, tuple[str, str]]:
    """What each step pod asks for (``deployment.POD_MEMORY``, from the list of stages)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from watchme_pipeline.deployment import POD_MEMORY

    return POD_MEMORY


def model_steps(bench: dict) -> list[str]:
    """The measured steps that load a model (a pod each per run)."""
    return [s for s in bench["peak_rss_mb_per_step_one_model"] if s != "raw_audio"]


def plan(bench: dict) -> str:
    day_s = bench["day_mixed_s"]  # wall seconds for one device-day on a 2-core pod
    rss = bench["peak_rss_mb_one_model"]
    est = bench.get("estimated_need_mb_one_model") or {}
    pods = pod_memory()
    per_pod_day = 86_400 * UTILISATION / day_s  # device-days one pod finishes per day
    lines = [
        f"Inputs (from `{LATEST.relative_to(ROOT)}`): a mixed device-day takes **{day_s:.0f} s**"
        f" on one {POD_CPUS}-core pod (all-speech day {bench['day_all_speech_s']:.0f} s), peak"
        f" RSS **{rss} MB** with one model resident, a process per step"
        f" ({bench['peak_rss_mb_all_models']} MB with all {len(model_steps(bench))} models in one"
        " process); pods planned"
        f" at {UTILISATION:.0%} busy.",
        "",
        "Step pods (`Stage.memory_mb`, what `deployment.pod_tags` asks for): the request is"
        " the base process, the model's estimated need for its standard checkpoint (runtime,"
        " weights, one batch item) and the stage's own work, +10 %, rounded up to 50 MiB;"
        " `WATCHME_MEMORY_MB` in the pod is set to it (the registry keeps the process under"
        " it); the limit is 25 % more. Each must sit above the step's measured peak:",
        "",
        "| step | measured peak RSS | registry's estimate | request | limit |",
        "|---|---|---|---|---|",
        *[f"| {step} | {mb} MB | {est.get(step, '-')}{' MB' if step in est else ''} |"
          f" {pods[step][0]} | {pods[step][1]} |"
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
        f"- Run launching, per-device partitions: a device uploads every 30 minutes and each"
        f" upload's device-day is requested once the run delay has passed, so up to"
        f" {sensor_runs} runs per device a day; the daemon launches about"
        f" {RUNS_PER_SECOND:g} run/s: per-device runs stop scaling near"
        f" **{limit_devices:,} devices**, before the partition limit of a long history does.",
        "",
        *group_plan(bench),
    ]
    return "\n".join(lines)


def group_plan(bench: dict) -> list[str]:
    """Group mode (WATCHME_DEVICE_GROUPS) at 1k/10k/100k devices: how many groups keep each
    run inside the run delay, what that costs in partitions, and upload-to-chart latency."""
    stages = {k: v["s_per_audio_min"] for k, v in bench["stages"].items()}
    slowest_stage, slowest_s = max(stages.items(), key=lambda kv: kv[1])
    cost = json.loads(UPLOAD_COST.read_text()) if UPLOAD_COST.exists() else None
    overhead_s = cost["run_overhead_wall_s"] if cost else 12.0
    d = RUN_DELAY_S
    # The model steps run as parallel pods (k8s executor), so a run takes its overhead plus
    # the slowest step over its uploads; it must end within the delay, or the group's next run
    # (one run per partition at a time) falls behind.
    # Planned at UTILISATION of the delay, as the pods are.
    per_group = int(UPLOAD_EVERY_S * (d * UTILISATION - overhead_s) / (d * slowest_s))
    lines = [
        f"Group mode (`WATCHME_DEVICE_GROUPS=N`, queue mode, `WATCHME_RUN_DELAY_S={d}`): each"
        f" (date, group) partition gets a run every {d} s carrying the group's uploads of"
        f" those {d} s. Inputs: the slowest model step, {slowest_stage}, takes"
        f" {slowest_s:.2f} s per 60 s slot (`latest.json`), and a run costs"
        f" {overhead_s:.0f} s before its first slot (process start and model loads"
        f"{', measured by `benchmarks/upload_cost.py`' if cost else ', the issue figure'})."
        f" The steps run as parallel pods, so a run takes that plus {slowest_s:.2f} s per"
        f" upload, and must end within the delay ({UTILISATION:.0%} of it, planned): at most"
        f" **{per_group} devices per group**.",
        "",
        "| devices | groups N (2-core step pods) | uploads per run | run time | upload to"
        " chart, worst | runs/s | partitions per asset, 5 years | or: 54 groups (5 years"
        " <= 100,000), slowest step's pod needs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fit = MAX_PARTITIONS // 1826  # groups that keep 5 years of dates within the limit
    rates = {}
    for devices in (1_000, 10_000, 100_000):
        groups = math.ceil(devices / per_group)
        uploads = devices / groups * d / UPLOAD_EVERY_S
        run_s = overhead_s + uploads * slowest_s
        rates[devices] = groups / d
        # With only `fit` groups, the slowest step's pod needs more cores (assumed to scale
        # linearly, as torch's intra-op threads roughly do on these models).
        cores = math.ceil(POD_CPUS * devices / fit * d / UPLOAD_EVERY_S * slowest_s
                          / (d * UTILISATION - overhead_s))
        lines.append(
            f"| {devices:,} | {groups:,} | {uploads:.1f} | {run_s:.0f} s | {d + run_s:.0f} s |"
            f" {rates[devices]:.2f} | {groups * 1826:,} |"
            f" {'2 cores (as planned)' if groups <= fit else f'{cores} cores'} |")
    lines += [
        "",
        f"- Upload to chart, worst case: the run delay ({d} s, the oldest upload's wait) plus"
        " the run; an upload landing later in the window waits less.",
        f"- Launching: {rates[10_000]:.2f} runs/s at 10,000 devices is inside one dequeue"
        f" loop's ~{RUNS_PER_SECOND:g} run/s; {rates[100_000]:.2f} runs/s at 100,000 is not,"
        " so the Helm values dequeue on 8 threads (`deploy/helm/values.yaml`).",
        "- The partition limit and a run's time pull apart: a run must finish within the"
        " delay, which caps devices per group (raising the delay does not help: the uploads"
        " per run grow with it), while dates x groups must stay under"
        f" {MAX_PARTITIONS:,}. At 10,000 devices 54 groups hold 5 years with a bigger pod for"
        " the slowest step; at 100,000 no pod is big enough: keep less history as partitions"
        " (`WATCHME_START_DATE`; older days stay in the tables and the store) or fan a step"
        " out within a run (not built).",
        "- Pods: as in the first table (the CPU per upload is the same; the per-run overhead"
        f" adds {overhead_s:.0f} s x {len(model_steps(bench))} model step pods per run).",
    ]
    if cost:
        cpu = cost["cpu_s_per_upload"]
        batch = cpu["a batch run (one device-day)"]
        lines.append(
            f"- CPU per upload (`benchmarks/upload_cost.py`, {cost['uploads']} uploads of 60 s"
            f" speech, {cost['whisper']} Whisper base): "
            + "; ".join(f"{label} {v:.1f} s ({v / batch:.2f}x)" for label, v in cpu.items())
            + ". A group run carries its devices' new uploads, so it costs what a batch run"
            " does.")
    return lines


def main() -> None:
    import sys

    bench = json.loads((Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST).read_text())
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + plan(bench) + "\n" + text[end:])
    print(plan(bench))


if __name__ == "__main__":
    main()
