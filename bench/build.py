"""Benchmark a full warehouse build over a generated lake (N volumes x D days, hourly)."""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.contract import LAKE_SCHEMA

GIB = 2**30


def generate_day(volumes: int, day: datetime, day_index: int) -> pl.DataFrame:
    """One day of hourly snapshots, sorted by volume then time (the compacted-day layout)."""
    hours = pl.DataFrame({"hour": pl.arange(0, 24, eager=True, dtype=pl.Int64)})
    ids = pl.DataFrame({"v": pl.arange(0, volumes, eager=True, dtype=pl.Int64)})
    frame = ids.join(hours, how="cross")
    t = pl.col("hour") / 24 + day_index  # days since the lake's start
    noise = (pl.struct("v", "hour").hash(day_index) % 1000).cast(pl.Float64) / 1000 - 0.5
    rate = (pl.col("v") % 50).cast(pl.Float64) * 0.2 * GIB  # 0..10 GiB/day
    used = 50 * GIB + rate * t + (pl.col("v") % 7 == 0) * 30 * GIB * (t * 6.2832 / 7).sin()
    snapshot_at = pl.lit(day) + pl.duration(hours=pl.col("hour"))
    return frame.select(
        volume_id=pl.format("vol-{}", pl.col("v")),
        name=pl.format("volume {}", pl.col("v")),
        created_at=pl.lit(day - timedelta(days=day_index)),
        used_bytes=(used + noise * GIB).clip(0).cast(pl.Int64),
        inode_count=(1000 + pl.col("v") + (t * 100)).cast(pl.Int64),
        mount_count=(pl.col("v") % 4).cast(pl.Int32),
        max_size_bytes=pl.when(pl.col("v") % 20 == 0)
        .then(None)
        .otherwise(pl.lit(2000 * GIB))
        .cast(pl.Int64),
        max_file_count=pl.lit(10_000_000, pl.Int64),
        max_mounts=pl.lit(8, pl.Int32),
        last_reconciled_at=snapshot_at - pl.duration(minutes=7),
        status=pl.lit("available"),
        host_id=pl.lit(None, pl.String),
        snapshot_at=snapshot_at,
        observed_at=snapshot_at + pl.duration(seconds=2),
    ).cast(LAKE_SCHEMA)


def generate(data_dir: Path, volumes: int, days: int) -> int:
    """Write the lake; returns the row count."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    rows = 0
    for index in range(days):
        day = start + timedelta(days=index)
        folder = data_dir / "lake" / "volume_snapshots" / f"snapshot_date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = generate_day(volumes, day, index)
        frame.write_parquet(folder / "day.parquet", compression="zstd", compression_level=1)
        rows += frame.height
    return rows


BUILD = """
import sys
from pathlib import Path
from pipelines.warehouse import build_warehouse
result = build_warehouse(Path(sys.argv[1]))
print(result.summary())
print('seconds per step:', result.timings)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--data-dir", type=Path, help="keep the lake here (default: a temp dir)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="volcap-bench-"))
    try:
        started = time.perf_counter()
        rows = generate(data_dir, args.volumes, args.days)
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", BUILD, str(data_dir)], check=True)
        seconds = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"full build {args.volumes:,} volumes x {args.days} days: "
            f"{seconds:.1f}s wall (whole process), peak RSS {peak_mib:,.0f} MiB"
        )
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
