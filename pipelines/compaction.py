"""Compaction: each closed day's snapshot files become one file sorted by volume and time.

Hourly (or 15-minute) partitions leave 24-96 small files a day; one file per day sorted by
`volume_id, snapshot_at` is ~4× smaller (dictionary-encoded ids) and models read it ~3× faster
(bench/compaction.py measures both). The compacted file is written to staging, renamed into the day's folder as
`day-YYYY-MM-DD.parquet`, and only then are the files it replaces removed. Each source (fleet)
is compacted on its own, into `day-YYYY-MM-DD.S.parquet` for a source S other than the default,
so a compacted file holds one source and its min/max statistics let readers skip it.

Between that rename and the removals, a reader globbing `*.parquet` sees each row twice. We
accept that moment instead of hiding it: the warehouse's `volume_snapshots` deduplicates
(volume_id, snapshot_at) across files whose time ranges overlap, so builds are exact at any
instant, and a crash in the middle leaves a state the next run finishes (the compacted file is
an input of the next compaction, which dedups again and keeps the row observed last). The
alternatives were worse: renaming directories makes the day vanish between two renames, and
an atomic directory exchange (renameat2) is Linux-only and still breaks a reader that listed
the old files before the swap.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.config import SUPPORTED_CADENCES
from pipelines.lake import DataDir
from pipelines.publish import fsync_dir
from pipelines.sources import DEFAULT_SOURCE, file_suffix, source_of_file

COMPACTED_PREFIX = "day-"


@dataclass(frozen=True)
class Compacted:
    day: date
    path: Path
    files_in: int
    rows: int
    bytes_in: int
    bytes_out: int
    source: str = DEFAULT_SOURCE


def compacted_name(day: date, source: str = DEFAULT_SOURCE) -> str:
    return f"{COMPACTED_PREFIX}{day:%Y-%m-%d}{file_suffix(source)}.parquet"


def _source_files(folder: Path, source: str) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if source_of_file(p.name) == source)


def day_folder(data: DataDir, day: date) -> Path:
    return data.lake / f"snapshot_date={day:%Y-%m-%d}"


def closed_days(data: DataDir, *, now: datetime | None = None) -> list[date]:
    """Days with more than one file (or an uncompacted file) that ended before `now`'s day."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    days = []
    for folder in sorted(data.lake.glob("snapshot_date=*")):
        try:
            day = date.fromisoformat(folder.name.split("=", 1)[1])
        except ValueError:
            continue
        if day >= today:
            continue
        files = list(folder.glob("*.parquet"))
        sources = {source_of_file(f.name) for f in files}
        if any(
            [f.name for f in files if source_of_file(f.name) == source]
            != [compacted_name(day, source)]
            for source in sources
        ):
            days.append(day)
    return days


def compact_day(
    data: DataDir,
    day: date,
    *,
    memory_limit: str = "2GB",
    threads: int | None = None,
    lock_timeout: float = 600.0,
) -> Compacted | None:
    """Rewrite one day's files of `data.source` as its compacted file (idempotent; None if
    nothing to do). Other sources' files in the folder are left alone."""
    folder = day_folder(data, day)
    final = folder / compacted_name(day, data.source)
    with contextlib.ExitStack() as locks:
        # every writer of this day waits (ingest takes the same per-partition locks): every
        # partition start at the finest supported cadence, so a 15-minute deployment's
        # :15/:30/:45 partitions are held too, not only the HH:00 ones
        step = math.gcd(*SUPPORTED_CADENCES)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for minute in range(0, 24 * 60, step):
            instant = midnight + timedelta(minutes=minute)
            locks.enter_context(data.partition_lock(instant, timeout=lock_timeout))
        if data.remote is not None:  # compact exactly what the bucket holds for the day
            data.remote.pull(folder)
        inputs = _source_files(folder, data.source)
        if not inputs or inputs == [final]:
            return None
        staged = data.stage(compacted_name(day, data.source))
        spill = data.stage("compaction-spill")
        con = duckdb.connect(
            config={
                "memory_limit": memory_limit,
                "temp_directory": str(spill),
                "preserve_insertion_order": False,
                **({"threads": threads} if threads else {}),
            }
        )
        try:
            con.execute("set timezone = 'UTC'")
            # rows stored twice (a compacted file beside a late hourly rerun) keep the row
            # observed last, as the warehouse would; files written before sources existed have
            # no `source` column (the empty branch gives it to them as null)
            con.execute(
                """
                copy (
                    select
                        coalesce(source, $source) as source,
                        columns(lambda c: c not in ('source', 'filename'))
                    from (
                        from read_parquet($files, union_by_name = true, filename = true)
                        union all by name
                        select cast(null as varchar) as source where false
                    )
                    qualify row_number() over (
                        partition by source, volume_id, snapshot_at
                        order by observed_at desc nulls last, filename desc
                    ) = 1
                    order by volume_id, snapshot_at
                ) to $path (format parquet, compression zstd, row_group_size 1000000)
                """,
                {"files": [str(p) for p in inputs], "path": str(staged), "source": data.source},
            )
            rows = con.execute("select count(*) from read_parquet(?)", [str(staged)]).fetchone()
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        finally:
            con.close()
            with contextlib.suppress(FileNotFoundError, OSError):
                for leftover in spill.iterdir() if spill.exists() else []:
                    leftover.unlink()
                spill.rmdir()
        bytes_in = sum(p.stat().st_size for p in inputs)
        data.publish(staged, final)
        for path in inputs:
            if path != final:
                data.remove(path)
        fsync_dir(folder)
    return Compacted(
        day,
        final,
        len(inputs),
        int(rows[0]) if rows else 0,
        bytes_in,
        final.stat().st_size,
        data.source,
    )


def compact_lake(
    data: DataDir, *, now: datetime | None = None, **kwargs: object
) -> list[Compacted]:
    """Compact every closed day that still has more than its compacted file, source by source;
    then remove the lock files nobody holds (left by killed runs)."""
    done = []
    data.pull_lake()
    for day in closed_days(data, now=now):
        sources = sorted({source_of_file(p.name) for p in day_folder(data, day).glob("*.parquet")})
        for source in sources:
            result = compact_day(data.for_source(source), day, **kwargs)  # type: ignore[arg-type]
            if result is not None:
                done.append(result)
    data.sweep_locks()
    return done
