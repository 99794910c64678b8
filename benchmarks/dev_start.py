"""How long `make dev` takes to answer on its port when the sample day is already there, and
that it rewrites no audio file: `python benchmarks/dev_start.py [starts]`.

The first start writes the sample day if it is missing (not timed); each later start is timed
from the command to the UI's first HTTP answer. Results: benchmarks/results/dev_start.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dev_start.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audio_files(root: Path) -> dict[str, tuple[float, int]]:
    return {str(p): (p.stat().st_mtime, p.stat().st_size)
            for p in (root / "files").rglob("*") if p.is_file()} if root.exists() else {}


def start_and_wait(port: int, timeout: float = 300) -> float:
    """Seconds from `make dev PORT=…` to the webserver's first answer; then stop it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["make", "-s", "dev", f"PORT={port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"make dev exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info",
                                            timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.25)
        raise TimeoutError(f"make dev did not answer on port {port} in {timeout:.0f} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main(starts: int = 3) -> None:
    audio_root = Path(os.environ.get("WATCHME_AUDIO_STORE")
                      or Path(os.environ.get("WATCHME_DATA_DIR") or ROOT / "data") / "audio")
    first = start_and_wait(free_port())  # writes the sample day if it is missing
    before = audio_files(audio_root)
    seconds = [round(start_and_wait(free_port()), 1) for _ in range(starts)]
    after = audio_files(audio_root)
    rewritten = sorted(k for k in before if after.get(k) != before[k])
    result = {"first_start_s": round(first, 1), "later_starts_s": seconds,
              "audio_files": len(before), "audio_files_rewritten": len(rewritten),
              "cpus": os.cpu_count()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
