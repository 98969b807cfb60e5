"""Benchmark warehouse builds over a generated lake (N volumes x D days, hourly): a full build,
and with --incremental, then one more hourly snapshot at a time, each followed by an
incremental build; with --cli, one more snapshot and an incremental `volcap build` (the whole
command: interpreter, imports, the Dagster run and its checks)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.contract import LAKE_SCHEMA
from pipelines.sources import DEFAULT_SOURCE

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
        source=pl.lit(DEFAULT_SOURCE),
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


def lake_start(days: int) -> datetime:
    """The first day of a lake of `days` days ending before today."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=days)


def add_snapshot(data_dir: Path, volumes: int, start: datetime, hour: int) -> Path:
    """Write the lake's hourly snapshot `hour` hours after `start` as ingest would (one file)."""
    instant = start + timedelta(hours=hour)
    day = instant.replace(hour=0)
    frame = generate_day(volumes, day, hour // 24).filter(pl.col("snapshot_at") == instant)
    folder = data_dir / "lake" / "volume_snapshots" / f"snapshot_date={instant:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{instant:%Y%m%dT%H%MZ}.parquet"
    frame.write_parquet(path, compression="zstd", compression_level=1)
    return path


def generate(data_dir: Path, volumes: int, days: int) -> int:
    """Write the lake; returns the row count."""
    start = lake_start(days)
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
import re, sys
from pathlib import Path
from pipelines.warehouse import build_warehouse
result = build_warehouse(Path(sys.argv[1]), full=sys.argv[2] == 'full')
print(result.summary())
print('seconds per step:', result.timings)
# the forecast receipts' own steps: replaying volcap per origin, calibrating, scoring
BACKTEST = ('volcap_replay', 'quota_fills', 'forecast_daily_sums', 'backtest_origins',
            'backtest_baselines', 'forecast_calibration', 'forecast_backtest', 'forecast_accuracy')
print('backtest_seconds', sum(result.timings.get(step, 0.0) for step in BACKTEST))
status = Path('/proc/self/status').read_text()
print('peak_rss_kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1))
import duckdb
with duckdb.connect(str(result.path), read_only=True) as con:
    total, free = con.execute('select total_blocks, free_blocks from pragma_database_size()').fetchone()
print('file_mib', result.path.stat().st_size / 2**20, 'free_share', free / max(total, 1))
"""


def build(data_dir: Path, mode: str) -> tuple[float, float, float, float]:
    """One build in a fresh process: (wall seconds, seconds inside build_warehouse, peak RSS
    MiB of that process alone, seconds of the backtest's steps). It prints the published
    file's size and its share of free blocks.

    Peak RSS is the child's own VmHWM: ru_maxrss would carry the parent's at fork.
    """
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(data_dir), mode],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    print(done.stdout.strip())
    match = re.search(r"peak_rss_kib (\d+)", done.stdout)
    inside = re.search(r" in ([\d.]+)s \(", done.stdout)
    backtest = re.search(r"backtest_seconds ([\d.]+)", done.stdout)
    return (
        seconds,
        float(inside.group(1)) if inside else float("nan"),
        int(match.group(1)) / 1024 if match else float("nan"),
        float(backtest.group(1)) if backtest else float("nan"),
    )


def cli_build(data_dir: Path) -> tuple[float, float]:
    """`volcap build` as a user runs it: (wall seconds, peak RSS MiB), polled from /proc."""
    env = {**os.environ, "VOLCAP_DATA_DIR": str(data_dir)}
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance: nothing recorded
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "build"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0
    while child.poll() is None:
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    output = child.stdout.read() if child.stdout else ""
    print(output.strip())
    if child.returncode != 0:
        raise SystemExit(f"volcap build failed: {output.strip()}")
    return seconds, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--data-dir", type=Path, help="keep the lake here (default: a temp dir)")
    parser.add_argument(
        "--incremental",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="SNAPSHOTS",
        help="after the full build, add this many hourly snapshots (default 2: the first of a "
        "new day, then one within it), each followed by an incremental build",
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="then add one more snapshot and time an incremental `volcap build` (whole command)",
    )
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="volcap-bench-"))
    try:
        started = time.perf_counter()
        rows = generate(data_dir, args.volumes, args.days)
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f}s")
        size = f"{args.volumes:,} volumes x {args.days} days"
        seconds, inside, peak_mib, backtest = build(data_dir, "full")
        figures = [
            f"full build {size}: {seconds:.1f}s wall (whole process; {inside:.1f}s in "
            f"build_warehouse, {backtest:.1f}s of it the backtest), peak RSS {peak_mib:,.0f} MiB"
        ]
        print(figures[-1])
        for extra in range(args.incremental):
            added = add_snapshot(
                data_dir, args.volumes, lake_start(args.days), 24 * args.days + extra
            )
            seconds, inside, peak_mib, backtest = build(data_dir, "incremental")
            figures.append(
                f"incremental build {size} + {added.stem}: {seconds:.1f}s wall (whole process; "
                f"{inside:.1f}s in build_warehouse, {backtest:.1f}s of it the backtest), "
                f"peak RSS {peak_mib:,.0f} MiB"
            )
            print(figures[-1])
        if args.cli:
            added = add_snapshot(
                data_dir, args.volumes, lake_start(args.days), 24 * args.days + args.incremental
            )
            seconds, peak_mib = cli_build(data_dir)
            figures.append(
                f"volcap build (incremental) {size} + {added.stem}: {seconds:.1f}s wall, "
                f"peak RSS {peak_mib:,.0f} MiB"
            )
            print(figures[-1])
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print("\n".join(["", *figures, f"load average at the end (1/5/15 min): {load}"]))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
