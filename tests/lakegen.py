"""Small seeded lakes from explicit per-volume series, written in the lake's real layout."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.contract import LAKE_SCHEMA
from pipelines.sources import DEFAULT_SOURCE, file_suffix

GIB = 2**30
#: A fixed instant for deterministic tests (the last snapshot of generated lakes).
END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

Series = Callable[[float], float]
Limit = int | None | Callable[[float], int | None]


@dataclass
class Volume:
    """One volume's truth: usage and limits as functions of days since the lake's first hour."""

    volume_id: str
    used: Series = lambda day: 100 * GIB
    inodes: Series = lambda day: 10_000
    max_size_bytes: Limit = 1000 * GIB
    max_file_count: Limit = 10_000_000
    mount_count: int = 1
    max_mounts: Limit = 8
    status: str = "available"
    host_id: str | None = None
    #: usage is refreshed every this many hours (the provider's reconciliation cadence)
    reconcile_every_hours: int = 1
    #: first and last (exclusive) hour index the volume appears in; None = until the end
    first_hour: int = 0
    last_hour: int | None = None
    #: reconciliation stops after this hour (stale volume); None = never stalls
    stall_after_hour: int | None = None
    #: hours after first_hour during which the volume was never reconciled (null usage time)
    unreconciled_hours: int = 0


def _limit(limit: Limit, day: float) -> int | None:
    return limit(day) if callable(limit) else limit


def noisy(base: Series, scale: float, seed: int) -> Series:
    """`base` plus Gaussian noise that is a fixed function of the hour (same seed, same data)."""

    def series(day: float) -> float:
        rng = random.Random(seed * 1_000_003 + round(day * 24))
        return base(day) + rng.gauss(0.0, scale)

    return series


def linear(start: float, per_day: float) -> Series:
    """start + per_day * day."""
    return lambda day: start + per_day * day


def weekly(level: float, amplitude: float, per_day: float = 0.0) -> Series:
    """A weekly sine cycle around a (possibly growing) level."""
    return lambda day: level + per_day * day + amplitude * math.sin(2 * math.pi * day / 7)


def snapshots(
    volumes: list[Volume], *, hours: int, end: datetime = END, source: str = "default"
) -> pl.DataFrame:
    """Hourly snapshot rows of one source for `hours` hours ending at `end`, typed exactly as
    the lake."""
    start = end - timedelta(hours=hours - 1)
    rows = []
    for volume in volumes:
        last = hours if volume.last_hour is None else min(volume.last_hour, hours)
        for hour in range(volume.first_hour, last):
            snapshot_at = start + timedelta(hours=hour)
            reconciled_hour = hour - hour % volume.reconcile_every_hours
            if volume.stall_after_hour is not None:
                reconciled_hour = min(reconciled_hour, volume.stall_after_hour)
            reconciled = hour - volume.first_hour >= volume.unreconciled_hours
            day = reconciled_hour / 24
            rows.append(
                {
                    "source": source,
                    "volume_id": volume.volume_id,
                    "name": f"name-{volume.volume_id}",
                    "created_at": start + timedelta(hours=volume.first_hour),
                    "used_bytes": max(0, round(volume.used(day))) if reconciled else 0,
                    "inode_count": max(0, round(volume.inodes(day))) if reconciled else 0,
                    "mount_count": volume.mount_count,
                    "max_size_bytes": _limit(volume.max_size_bytes, hour / 24),
                    "max_file_count": _limit(volume.max_file_count, hour / 24),
                    "max_mounts": _limit(volume.max_mounts, hour / 24),
                    "last_reconciled_at": (
                        start + timedelta(hours=reconciled_hour, minutes=-7) if reconciled else None
                    ),
                    "status": volume.status,
                    "host_id": volume.host_id,
                    "snapshot_at": snapshot_at,
                    "observed_at": snapshot_at + timedelta(seconds=3),
                }
            )
    return pl.DataFrame(rows, schema=LAKE_SCHEMA)


def write_lake(data_dir: Path, frame: pl.DataFrame, *, name: str | None = None) -> None:
    """Write rows as the ingestion does: one file per snapshot under snapshot_date=YYYY-MM-DD.

    With `name`, each day's rows go to one file of that name instead (e.g. a compacted day, or
    a duplicate copy of snapshots already in the lake).
    """
    root = Path(data_dir) / "lake" / "volume_snapshots"
    keys = ["snapshot_date"] if name else ["snapshot_date", "snapshot_at"]
    dated = frame.with_columns(snapshot_date=pl.col("snapshot_at").dt.date())
    for part in dated.partition_by(keys, maintain_order=True):
        first = part.row(0, named=True)
        folder = root / f"snapshot_date={first['snapshot_date']:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = file_suffix(first.get("source") or DEFAULT_SOURCE)
        file = name or f"{first['snapshot_at']:%Y%m%dT%H%MZ}{suffix}.parquet"
        part.drop("snapshot_date").write_parquet(folder / file)
