"""What an object-store data dir costs: one snapshot published to a local dir vs to S3, and
pulling a lake into an empty cache (a new machine) vs an up-to-date one (every build).

The S3 side is moto's server on loopback (a Python server: slower than real S3 per request,
but without network latency), so read the figures as volcap's own overhead plus a local
store, not as AWS throughput.

Run: `uv run python -m bench.objectstore --volumes 100000 --hours 24 --runs 3`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fakes.s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3
from pipelines.ingest import Window, land_raw, publish_lake
from pipelines.lake import DataDir
from pipelines.objectstore import Remote
from pipelines.resources import VolumeApi
from simulator import DEFAULT_START, SimulatorServer

TOKEN = "bench-token-0000"


def warm(api: VolumeApi, sim: SimulatorServer, hour: int, scratch: Path) -> None:
    """Render the hour's fleet once, so neither side pays the simulator's render."""
    sim.set_clock(DEFAULT_START + timedelta(days=1, hours=hour, minutes=5))
    api.fetch_to(scratch)
    scratch.unlink()


def snapshot(api: VolumeApi, data: DataDir, sim: SimulatorServer, hour: int) -> float:
    start = DEFAULT_START + timedelta(days=1, hours=hour)
    sim.set_clock(start + timedelta(minutes=5))
    began = time.perf_counter()
    land_raw(api, data, Window(start, start + timedelta(hours=1)), min_volume_share=0)
    publish_lake(data, start)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=24, help="lake size for the pull figures")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    s3 = MotoS3("volcap-bench").start()
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=s3.endpoint,
        AWS_ALLOW_HTTP="true",
    )
    sim = SimulatorServer(volumes=args.volumes, seed=5, token=TOKEN).start()
    api = VolumeApi(base_url=sim.url, token=TOKEN)
    work = Path(tempfile.mkdtemp(prefix="volcap-bench-s3-"))
    try:
        local = DataDir.at(work / "local")
        cache = work / "cache"
        remote = DataDir.at(cache, Remote.open("s3://volcap-bench/lake-a", cache.resolve()))
        times: dict[str, list[float]] = {"local dir": [], "s3 (moto)": []}
        for hour in range(args.hours):
            warm(api, sim, hour, work / "warm.json")
            times["local dir"].append(snapshot(api, local, sim, hour))
            times["s3 (moto)"].append(snapshot(api, remote, sim, hour))
        print(f"one snapshot of {args.volumes:,} volumes, median of {args.hours}:")
        for name, values in times.items():
            print(f"  {name:<10} {statistics.median(values):7.2f} s")
        ratio = statistics.median(times["s3 (moto)"]) / statistics.median(times["local dir"])
        print(f"  s3 / local {ratio:7.2f}x")

        lake_bytes = sum(p.stat().st_size for p in remote.lake.rglob("*.parquet"))
        cold, hot = [], []
        assert remote.remote is not None
        for _ in range(args.runs):
            shutil.rmtree(remote.lake)
            began = time.perf_counter()
            report = remote.remote.pull(remote.lake)
            cold.append(time.perf_counter() - began)
            began = time.perf_counter()
            again = remote.remote.pull(remote.lake)
            hot.append(time.perf_counter() - began)
            assert again.downloaded == 0
        print(
            f"pull {report.objects} lake objects ({lake_bytes / 2**20:.1f} MiB): "
            f"empty cache {statistics.median(cold):.2f} s, up-to-date cache "
            f"{statistics.median(hot):.3f} s (median of {args.runs})"
        )
    finally:
        sim.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
