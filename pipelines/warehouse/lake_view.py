"""The lake as a source: its files and their manifest, the typed view over them, and the build's links to them."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.lake import DataDir
from pipelines.lake_types import LAKE_DUCKDB_TYPES
from pipelines.publish import FILE_MODE, mkdir_private
from pipelines.sources import DEFAULT_SOURCE
from pipelines.warehouse.errors import BuildError, EmptyLakeError
from pipelines.warehouse.schema import EPOCH, STAGING_SCHEMA, midnight, sql_string

#: A file written by ingest for one snapshot instant, e.g. 20261127T0100Z.parquet (the default
#: source) or 20261127T0100Z.eu-west.parquet (source eu-west).
SLUG_FILE = re.compile(r"^\d{8}T\d{4}Z(\.[a-z0-9][a-z0-9_-]{0,31})?\.parquet$")


LAKE_LINKS_GRACE = timedelta(hours=24)


def _lake_file_groups(layout: DataDir, since: date = EPOCH) -> tuple[list[str], list[str]]:
    """(files whose rows cannot be stored elsewhere, files that may share rows with another).

    Each lake file covers either one snapshot instant (`<slug>.parquet`, written by ingest) or,
    for any other name (a compacted `day-<date>.parquet`), its whole day. Only files of the
    same day folder can hold the same (volume_id, snapshot_at), and only if one of them is not
    a single-instant file: a compacted day beside a late hourly rerun, or the moment between
    compaction's rename and its removal of the hourly files. Files never hold a key twice
    (ingest rejects duplicate ids, compaction dedups), so only the second group needs the
    deduplicating window — found from names alone, without opening a file.
    """
    unique: list[str] = []
    overlapping: list[str] = []
    for folder in sorted(layout.lake.glob("snapshot_date=*")):
        day = folder_day(folder.name)
        if day is not None and day < since:
            continue
        files = sorted(folder.glob("*.parquet"))
        whole_day = [f for f in files if not SLUG_FILE.match(f.name)]
        (overlapping if len(files) > 1 and whole_day else unique).extend(str(f) for f in files)
    return unique, overlapping


def _lake_columns() -> str:
    """The lake's columns cast to the contract's types (`source` defaults to the default
    source's name, a literal: a view cannot take prepared parameters)."""
    return ",\n    ".join(
        f"cast(coalesce({name}, {sql_string(DEFAULT_SOURCE)}) as {duckdb_type}) as {name}"
        if name == "source"
        else f"cast({name} as {duckdb_type}) as {name}"
        for name, duckdb_type in LAKE_DUCKDB_TYPES.items()
    )


def lake_select(files: str, *, deduplicate: bool) -> str:
    """SELECT of the lake's typed columns (and snapshot_date) from the Parquet `files`
    expression; with `deduplicate`, one row per (source, volume_id, snapshot_at), the row
    observed last. Files written before sources existed have no `source` column: they are the
    default source's (an empty branch unioned by name gives the column even when no file has
    it)."""
    select = f"""select {_lake_columns()}, snapshot_date from (
            from read_parquet(
                {files},
                hive_partitioning = true,
                union_by_name = true,
                hive_types = {{'snapshot_date': 'DATE'}}
            )
            union all by name
            select cast(null as varchar) as source where false
        )"""
    if deduplicate:
        select += (
            " qualify row_number() over ("
            f"partition by coalesce(source, {sql_string(DEFAULT_SOURCE)}), volume_id, snapshot_at"
            " order by observed_at desc nulls last) = 1"
        )
    return select


def create_lake_view(
    con: duckdb.DuckDBPyConnection,
    layout: DataDir,
    since: date = EPOCH,
    name: str = "lake_volume_snapshots",
) -> None:
    """Declare a temporary view `name` over the lake with the contract's types, one row per
    (source, volume_id, snapshot_at): a snapshot stored twice keeps the row observed last.

    DuckDB cannot prepare a parameter inside CREATE VIEW, so the file lists are bound into
    session variables and the view reads them with getvariable(). With `since`, only the day
    folders from that day on are listed.
    """
    unique, overlapping = _lake_file_groups(layout, since)
    parts = []
    if unique or not overlapping:
        # an empty lake keeps the glob, so reading it fails as it always did
        empty = str(layout.lake / "snapshot_date=*" / "*.parquet")
        con.execute(f"set variable {name}_unique = ?", [unique or [empty]])
        parts.append(lake_select(f"getvariable('{name}_unique')", deduplicate=False))
    if overlapping:
        con.execute(f"set variable {name}_overlapping = ?", [overlapping])
        parts.append(lake_select(f"getvariable('{name}_overlapping')", deduplicate=True))
    con.execute(
        f"create or replace temp view {name} as\n"
        + "\nunion all\n".join(f"({part})" for part in parts)
    )


def _link_or_copy(source: Path, target: Path) -> None:
    mkdir_private(target.parent)
    try:
        os.link(source, target)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise BuildError(f"lake file {source} vanished during the build: retry") from None
        # a filesystem without hard links: a copy is slower but as stable
        shutil.copy2(source, target)


def link_lake(
    con: duckdb.DuckDBPyConnection,
    layout: DataDir,
    manifest: dict[str, LakeFile],
    has_source: dict[str, bool],
    target: Path,
) -> None:
    """Give this build its own, unchanging view of the lake under `target`, then declare the
    warehouse's persistent view `lake_volume_snapshots` over it.

    Each lake file is hard-linked (no byte is copied) into `target/current/` or, without a
    `source` column, `target/legacy/`; a day whose files may share snapshots (a compacted day
    beside an hourly file) is written once, deduplicated, instead. Compaction, reruns and
    deletions in the lake then never change or remove a file a published warehouse reads: a
    reader holding it keeps seeing its build. The view names `target` by absolute path, so the
    warehouse opens from any working directory.
    """
    root = layout.lake
    days: dict[str, list[str]] = {}
    for path in manifest:
        days.setdefault(path.split("/", 1)[0], []).append(path)
    for folder, paths in sorted(days.items()):
        whole_day = [p for p in paths if not SLUG_FILE.match(p.rsplit("/", 1)[-1])]
        if len(paths) > 1 and whole_day:
            out = target / "current" / folder / "deduplicated.parquet"
            mkdir_private(out.parent)
            files = [str(root / p) for p in sorted(paths)]
            con.execute("set variable overlapping_day = ?", [files])
            select = lake_select("getvariable('overlapping_day')", deduplicate=True)
            con.execute(
                f"copy ({select}) to $path (format parquet, compression zstd)",
                {"path": str(out)},
            )
            os.chmod(out, FILE_MODE)  # DuckDB writes with the process umask
            continue
        for path in paths:
            group = "current" if has_source[path] else "legacy"
            _link_or_copy(root / path, target / group / path)
    parts = []
    for group in ("current", "legacy"):
        if any((target / group).glob("*/*.parquet")):
            glob = sql_string(str(target.resolve() / group / "*" / "*.parquet"))
            parts.append(lake_select(glob, deduplicate=False))
    con.execute(
        f"create or replace view {STAGING_SCHEMA}.lake_volume_snapshots as\n"
        + "\nunion all\n".join(f"({part})" for part in parts)
    )


def files_with_source(
    con: duckdb.DuckDBPyConnection,
    layout: DataDir,
    manifest: dict[str, LakeFile],
    known: dict[tuple[str, int], bool],
) -> dict[str, bool]:
    """Whether each lake file has a `source` column: from `known` (by path and inode, what the
    previous build found) or from the footers of the files it does not know."""
    found = {path: known.get((path, entry.inode)) for path, entry in manifest.items()}
    unknown = [path for path, value in found.items() if value is None]
    if unknown:
        root = layout.lake
        with_source = {
            row[0]
            for row in con.execute(
                "select distinct file_name from parquet_schema($files) where name = 'source'",
                {"files": [str(root / path) for path in unknown]},
            ).fetchall()
        }
        for path in unknown:
            found[path] = str(root / path) in with_source
    return {path: bool(value) for path, value in found.items()}


def retire_links(root: Path, current: str) -> None:
    """Remove the lake-link folders of earlier builds once LAKE_LINKS_GRACE has passed since
    they were made; the newest earlier one is kept anyway (the next incremental build reads
    the rows it replaces through the published warehouse, which may still point at it)."""
    cutoff = time.time() - LAKE_LINKS_GRACE.total_seconds()
    earlier = sorted(
        (folder for folder in root.iterdir() if folder.name != current),
        key=lambda folder: folder.stat().st_mtime,
    )
    for folder in earlier[:-1]:
        if folder.stat().st_mtime < cutoff:
            remove(folder)


def folder_day(name: str) -> date | None:
    """The day of a `snapshot_date=YYYY-MM-DD` folder (None for any other name)."""
    key, _, value = name.partition("=")
    if key != "snapshot_date":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def latest_file_instant(layout: DataDir) -> datetime:
    """The latest snapshot instant the lake's file names give (a compacted day counts from its
    start): the as_of of a lake whose snapshots hold no rows, which no row can give."""
    instants = []
    for file in layout.lake_files():
        if SLUG_FILE.match(file.name):
            instants.append(datetime.strptime(file.name[:14], "%Y%m%dT%H%MZ").replace(tzinfo=UTC))
        elif (day := folder_day(file.parent.name)) is not None:
            instants.append(midnight(day))
    if not instants:
        raise EmptyLakeError(f"the lake under {layout.lake} has no rows")
    return max(instants)


@dataclass(frozen=True)
class LakeFile:
    day: date | None
    size: int
    mtime_ns: int
    #: a rerun or a compaction writes a new file and renames it over: a new inode
    inode: int


def lake_manifest(layout: DataDir) -> dict[str, LakeFile]:
    """Every lake file (by path under the lake table) with its day, size and mtime.

    Taken before the lake is read: a file replaced while the build reads it gets a new mtime,
    so the next build sees its day as changed (never the other way round).
    """
    root = layout.lake
    manifest = {}
    for path in layout.lake_files():
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        relative = path.relative_to(root)
        manifest[relative.as_posix()] = LakeFile(
            folder_day(relative.parts[0]), stat.st_size, stat.st_mtime_ns, stat.st_ino
        )
    return manifest


def remove(path: Path) -> None:
    """Remove a file or a folder with everything in it (gone already is fine)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
