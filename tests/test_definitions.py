import subprocess
import sys
from pathlib import Path

from watchme_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_hold_the_six_assets_in_lineage_order():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_audio", "transcripts", "event_scores", "emotion_scores", "vibe_prompt",
                    "mood_chart"}
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
               for k in graph.get_all_asset_keys()}
    assert parents["transcripts"] == {"raw_audio"}
    assert parents["vibe_prompt"] == {"raw_audio", "transcripts", "event_scores",
                                      "emotion_scores"}
    assert parents["mood_chart"] == {"vibe_prompt"}
    job = defs.resolve_job_def("device_day_job")
    assert job.executor_def.name == "in_process"


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr
