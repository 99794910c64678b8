"""Time one new_audio_sensor tick over N keys in a bucket of moto's S3 server on loopback.

    python benchmarks/sensor_tick.py [N]
"""

import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("WATCHME_MODEL_PROFILE", "tiny")

import logging  # noqa: E402

import dagster as dg  # noqa: E402
from dagster_aws.s3 import S3Resource  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from watchme_pipeline.partitions import build_partitions  # noqa: E402
from watchme_pipeline.resources import S3AudioStore, SqlResultStore  # noqa: E402
from watchme_pipeline.sensors import build_new_audio_sensor  # noqa: E402
from watchme_pipeline.slots import SLOTS  # noqa: E402

new_audio_sensor = build_new_audio_sensor(build_partitions("Asia/Tokyo", "2025-01-01"))


def main(n: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Resource(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")
        client = s3.get_client()
        client.create_bucket(Bucket="bench")
        devices, days = 20, 11  # 20 devices x 11 days x 48 slots > 10,000 keys
        keys = [f"files/dev-{d:02d}/2025-07-{10 + day:02d}/{slot}/audio.wav"
                for d in range(devices) for day in range(days) for slot in SLOTS][:n]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: client.put_object(Bucket="bench", Key=k, Body=b"x"), keys))
        print(f"uploaded {len(keys)} keys in {time.perf_counter() - t0:.1f}s")
        store = S3AudioStore(bucket="bench", s3=s3)
        # The tick's one result-store read: the audit, for its devices (forgotten?).
        results = SqlResultStore(database_url=f"sqlite:///{tempfile.mkdtemp()}/results.db")
        with dg.instance_for_test() as instance:
            cursor, label, ticks = None, "first tick (all new)", 0
            while True:
                with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                             cursor=cursor, resources={
                                                 "audio_store": store,
                                                 "result_store": results}) as c:
                    t1 = time.perf_counter()
                    result = new_audio_sensor(c)
                    took = time.perf_counter() - t1
                cursor = result.cursor
                for request in result.dynamic_partitions_requests or []:
                    instance.add_dynamic_partitions(request.partitions_def_name,
                                                    request.partition_keys)
                ticks += 1
                if label or not result.run_requests:
                    print(f"{label or 'steady tick (nothing new)'}: {took:.2f}s over {len(keys)}"
                          f" keys, {len(result.run_requests)} run requests, "
                          f"cursor {len(cursor)} bytes")
                if not result.run_requests:
                    break
                label = ""
            print(f"backlog drained in {ticks - 1} ticks")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
