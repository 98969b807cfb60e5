"""Query time over hourly files vs compacted days (same rows), with the lake's real layout.

Run: `uv run python -m bench.compaction --volumes 10000 --days 30`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.build import generate_day
from pipelines.compaction import compact_lake
from pipelines.lake import DataDir

QUERIES = {
    "daily per-volume rollup": """
        select volume_id, cast(snapshot_at as date) as day, max(used_bytes), arg_max(used_bytes, snapshot_at)
        from read_parquet($glob, hive_partitioning = true) group by all""",
    "30-day regression": """
        select volume_id, regr_slope(used_bytes, epoch(snapshot_at))
        from read_parquet($glob, hive_partitioning = true)
        where snapshot_date >= (select max(snapshot_date) from read_parquet($glob, hive_partitioning = true)) - 30
        group by all""",
    "one volume's history": """
        select * from read_parquet($glob, hive_partitioning = true) where volume_id = 'vol-42'""",
}


def write_hourly(data_dir: Path, volumes: int, days: int) -> None:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    for index in range(days):
        day = start + timedelta(days=index)
        folder = data_dir / "lake" / "volume_snapshots" / f"snapshot_date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = generate_day(volumes, day, index)
        for (instant,), part in frame.group_by("snapshot_at"):
            part.write_parquet(folder / f"{instant:%Y%m%dT%H%MZ}.parquet", compression="zstd")


def measure(data_dir: Path, runs: int) -> dict[str, float]:
    glob = str(data_dir / "lake" / "volume_snapshots" / "snapshot_date=*" / "*.parquet")
    out = {}
    for name, sql in QUERIES.items():
        times = []
        for _ in range(runs):
            con = duckdb.connect()
            started = time.perf_counter()
            con.execute(sql, {"glob": glob}).fetchall()
            times.append(time.perf_counter() - started)
            con.close()
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="volcap-compaction-"))
    try:
        write_hourly(data_dir, args.volumes, args.days)
        lake = data_dir / "lake"
        size = lambda: sum(p.stat().st_size for p in lake.rglob("*.parquet"))  # noqa: E731
        files = lambda: len(list(lake.rglob("*.parquet")))  # noqa: E731
        before, before_size, before_files = measure(data_dir, args.runs), size(), files()
        started = time.perf_counter()
        done = compact_lake(DataDir.at(data_dir))
        seconds = time.perf_counter() - started
        after = measure(data_dir, args.runs)
        print(
            f"{args.volumes:,} volumes x {args.days} days: {before_files} files, "
            f"{before_size / 1e6:.0f} MB → {files()} files, {size() / 1e6:.0f} MB "
            f"(compacted {len(done)} days in {seconds:.1f}s)"
        )
        for name in QUERIES:
            print(
                f"  {name:26s} hourly {before[name]:6.2f}s   compacted {after[name]:6.2f}s   "
                f"{before[name] / after[name]:.1f}×"
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
