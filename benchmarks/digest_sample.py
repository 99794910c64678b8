"""The daily digest as it would go out, for the sample day of two devices and a device whose
two files are broken, run in-process with the tiny models (docs/operations.md, "Alerts").

    python benchmarks/digest_sample.py
"""

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from watchme_pipeline.alerts import AlertPolicy, digest_message, local_days  # noqa: E402
from watchme_pipeline.definitions import build_definitions  # noqa: E402
from watchme_pipeline.partitions import DeviceDay  # noqa: E402
from watchme_pipeline.sample_data import write_sample_day  # noqa: E402
from watchme_pipeline.sensors.alerts import build_digest  # noqa: E402


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="digest-"))
    (data / "models").mkdir()
    for name in os.listdir(ROOT / "data" / "models") if (ROOT / "data" / "models").is_dir() else []:
        os.symlink(ROOT / "data" / "models" / name, data / "models" / name)  # the tiny models
    defs = build_definitions({"WATCHME_DATA_DIR": str(data), "WATCHME_MODEL_PROFILE": "tiny"})
    today = local_days(dt.datetime.now(dt.UTC), "Asia/Tokyo")[0]
    audio = defs.resources["audio_store"]
    for device in ("dev-a", "dev-b"):
        write_sample_day(audio, device, today, seconds=8, voices=("espeak-ng", "synthetic"))
    for slot in ("09-00", "09-30"):
        audio.write(f"files/dev-c/{today}/{slot}/audio.wav", b"RIFFbroken")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("devices", ["dev-a", "dev-b", "dev-c"])
        job = defs.resolve_job_def("device_day_job")
        for device in ("dev-a", "dev-b", "dev-c"):
            job.execute_in_process(instance=instance, raise_on_error=False,
                                   partition_key=str(DeviceDay(device, today).partition_key))
        policy = AlertPolicy()
        # A day later, so that today is "yesterday" for the digest.
        digest = build_digest(defs.resources["result_store"], instance,
                              dt.datetime.now(dt.UTC) + dt.timedelta(days=1), policy)
        message = digest_message(digest, policy)
    print(f"[WatchMe] {message.title}\n{message.body}")


if __name__ == "__main__":
    main()
