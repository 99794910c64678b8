"""CPU per upload: a run per upload, a batch run of one device-day, and a group run.

    python benchmarks/upload_cost.py [--uploads 8]

The standard architectures (real Whisper base after `make weights`), 60 s speech slots, each
run in a fresh process as the run launcher starts one (imports, model loads, then the slots);
the CPU is the child's user+system time. Three ways the same uploads reach the tables:
- a run per upload (what per-file runs cost): the device-day grows by one file per run;
- a batch run: one run for one device-day's ``--uploads`` new files;
- a group run (WATCHME_DEVICE_GROUPS, queue mode's steady state): one run for ``--uploads``
  devices with one new file each, as a (date, group) run with their names in its run config.
Target (issue 22): a group run's CPU per upload <= 1.1 x the batch run's per slot.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATE = "2025-07-18"
RESULT = ROOT / "benchmarks" / "results" / "upload_cost.json"


def child(workdir: str, devices: list[str]) -> None:
    """One run: register the device-days' files, then each model stage over them (models
    loaded once for the run), as the assets do."""
    import logging
    from zoneinfo import ZoneInfo

    from models import build_standard_models, make_registry

    from watchme_pipeline.models.catalog import DEFAULT_EVENT_RUNTIME, DEFAULT_WHISPER_ENGINE
    from watchme_pipeline.partitions import DeviceDay
    from watchme_pipeline.resources import LocalAudioStore, SqlResultStore
    from watchme_pipeline.settings import PipelineSettings
    from watchme_pipeline.stage_runner import run_slot_stage
    from watchme_pipeline.stages import model_stages
    from watchme_pipeline.stages.raw_audio import find_recordings

    store = LocalAudioStore(root=f"{workdir}/audio")
    results = SqlResultStore(database_url=f"sqlite:///{workdir}/results.db")
    registry = make_registry(build_standard_models(), DEFAULT_WHISPER_ENGINE,
                             DEFAULT_EVENT_RUNTIME)
    settings, log = PipelineSettings(memory_mb=2000), logging.getLogger("bench")
    days = [DeviceDay(d, DATE) for d in devices]
    for day in days:
        find_recordings(store, results, day, ZoneInfo("Asia/Tokyo"), log)
    processed = 0
    for stage in model_stages():
        for day in days:
            outcome = run_slot_stage(stage, day, audio_store=store, result_store=results,
                                      registry=registry, settings=settings, log=log)
            processed += outcome.figures()["slots_processed"]
    print(json.dumps({"processed": processed}))


def run_child(workdir: Path, devices: list[str]) -> tuple[float, float, int]:
    """(CPU s, wall s, slot-stages processed) of one run in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", str(workdir), *devices],
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, json.loads(out.stdout.strip().splitlines()[-1])["processed"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    from models import build_standard_models, day_wavs, real_whisper

    from watchme_pipeline.resources import LocalAudioStore
    from watchme_pipeline.stages import model_stages

    per_slot = len(model_stages())  # a new slot is processed once by each model stage
    build_standard_models()  # once, outside the measured runs
    n = args.uploads
    wavs = list(day_wavs(n, 60.0, all_speech=True).values())
    slots = [f"{9 + i // 2:02d}-{i % 2 * 30:02d}" for i in range(n)]
    print(f"{n} uploads of 60 s speech; Whisper base weights: "
          f"{'real' if real_whisper() else 'random'}")

    def key(device: str, i: int) -> str:
        return f"files/{device}/{DATE}/{slots[i]}/audio.wav"

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A run per upload: the day grows by one file before each run.
        work = Path(tmp, "per-upload")
        store = LocalAudioStore(root=str(work / "audio"))
        per_upload = []
        for i in range(n):
            store.write(key("dev-a", i), wavs[i])
            per_upload.append(run_child(work, ["dev-a"]))
        assert all(p == per_slot for _, _, p in per_upload), per_upload
        figures["a run per upload"] = (sum(c for c, _, _ in per_upload) / n,
                                       sum(w for _, w, _ in per_upload) / n)
        # A batch run: one device-day, n new files.
        work = Path(tmp, "batch")
        store = LocalAudioStore(root=str(work / "audio"))
        for i in range(n):
            store.write(key("dev-b", i), wavs[i])
        cpu, wall, processed = run_child(work, ["dev-b"])
        assert processed == per_slot * n, processed
        figures["a batch run (one device-day)"] = (cpu / n, wall / n)
        # A group run: n devices of one group, one new file each.
        work = Path(tmp, "group")
        store = LocalAudioStore(root=str(work / "audio"))
        devices = [f"dev-g{i}" for i in range(n)]
        for i, device in enumerate(devices):
            store.write(key(device, i), wavs[i])
        cpu, wall, processed = run_child(work, devices)
        assert processed == per_slot * n, processed
        figures["a group run (one upload each of n devices)"] = (cpu / n, wall / n)
    batch = figures["a batch run (one device-day)"][0]
    per_run = figures["a run per upload"]
    RESULT.write_text(json.dumps({
        "uploads": n, "whisper": "real" if real_whisper() else "random",
        "model_stages": per_slot,
        "cpu_s_per_upload": {k: round(v[0], 1) for k, v in figures.items()},
        "wall_s_per_upload": {k: round(v[1], 1) for k, v in figures.items()},
        # What a run costs before its first slot: a one-upload run less a batch run's slot.
        "run_overhead_wall_s": round(per_run[1] - figures["a batch run (one device-day)"][1], 1),
        "run_overhead_cpu_s": round(per_run[0] - batch, 1),
    }, indent=1) + "\n")
    from report import write_page

    write_page("performance.md")  # its upload-cost table
    print("| how the uploads arrive | CPU s per upload | wall s per upload | x batch CPU |")
    print("|---|---|---|---|")
    for label, (cpu, wall) in figures.items():
        print(f"| {label} | {cpu:.1f} | {wall:.1f} | {cpu / batch:.2f} |")


if __name__ == "__main__":
    main()
