"""Build engine: run the SQL models into a new DuckDB file, verify it, swap it in atomically.

A full build runs every model from the whole lake. An incremental build starts from a copy of
the published warehouse, replaces the rows of the day-grained models from the first changed
day on (found by comparing the lake's files with the manifest the last build stored) and
rebuilds the other models whole; anything it cannot vouch for falls back to a full build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import duckdb

from pipelines import config, settings
from pipelines.catalog import apply_comments
from pipelines.lake import FILE_MODE, LAKE_TABLE, exclusive_lock, mkdir_private
from pipelines.models import Model, models
from pipelines.objectstore import Remote

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "warehouse.duckdb"
#: A file written by ingest for one snapshot instant, e.g. 20261127T0100Z.parquet (the default
#: source) or 20261127T0100Z.eu-west.parquet (source eu-west).
_SLUG_FILE = re.compile(r"^\d{8}T\d{4}Z(\.[a-z0-9][a-z0-9_-]{0,31})?\.parquet$")
MARTS_DIR = "marts"

#: `$since` of a full build: every day is built.
EPOCH = date(1970, 1, 1)
#: The lake files a build read, (path under the lake table, day, size, mtime_ns, inode), and the
#: build's models fingerprint and as_of: what the next build compares to find changed days.
#: The default schema (`main`) holds exactly the public tables; models that are only build
#: inputs live in `staging`, the build's own bookkeeping in `build`.
STAGING_SCHEMA = "staging"
BUILD_SCHEMA = "build"
MANIFEST_TABLE = f"{BUILD_SCHEMA}._build_manifest"
INFO_TABLE = f"{BUILD_SCHEMA}._build_info"
#: Bump when the engine's incremental logic changes, so the next build is a full one.
ENGINE_VERSION = 4
#: Under the data dir: one folder per build of hard links to the lake files it read
#: (`<token>/current|legacy/snapshot_date=YYYY-MM-DD/`), which its `lake_volume_snapshots`
#: view reads. A folder outlives its build by LAKE_LINKS_GRACE, for readers still holding it.
LAKE_LINKS_DIR = "warehouse.lake"
LAKE_LINKS_GRACE = timedelta(hours=24)

#: Tables verified before publishing; all but volume_snapshots are exported to
#: `marts/<table>.parquet`.
PUBLIC_TABLES: tuple[str, ...] = (
    "volume_snapshots",
    "volumes",
    "volume_daily",
    "fleet_daily",
    "capacity_trends",
    "quota_events",
    "quota_forecast",
    "volume_risk",
    "quota_forecast_history",
    "forecast_backtest",
    "forecast_accuracy",
)
#: The tables exported to `marts/<table>.parquet` on every build. volume_snapshots is not: its
#: Parquet form is the lake itself (`lake/volume_snapshots/snapshot_date=*/`), and re-exporting
#: the whole hourly history cost more than the rest of an incremental build.
EXPORTED_TABLES: tuple[str, ...] = tuple(t for t in PUBLIC_TABLES if t != "volume_snapshots")
#: Written by builds before EXPORTED_TABLES left volume_snapshots out; removed by the next build
#: so no reader keeps reading a file that no longer follows the warehouse.
RETIRED_EXPORTS: tuple[str, ...] = ("volume_snapshots.parquet",)


def schema_of(name: str) -> str:
    """The schema a model's table lives in: `main` for the public ones, else staging."""
    return "main" if name in PUBLIC_TABLES else STAGING_SCHEMA


def qualified(name: str) -> str:
    """A model's table, schema-qualified."""
    return f'{schema_of(name)}."{name}"'


class BuildError(RuntimeError):
    """The warehouse could not be built; the published one is untouched."""


class EmptyLakeError(BuildError):
    """The lake holds no snapshot files yet."""


@dataclass(frozen=True)
class ForecastParams:
    """Thresholds bound into the models; defaults from `pipelines.settings`."""

    critical_days: float = settings.CRITICAL_DAYS
    warning_days: float = settings.WARNING_DAYS
    stale_after: timedelta = settings.STALE_AFTER
    min_history_hours: float = settings.MIN_HISTORY_HOURS
    min_observations: int = settings.MIN_OBSERVATIONS
    interval_coverage: float = settings.INTERVAL_COVERAGE
    trend_confidence: float = settings.TREND_CONFIDENCE
    max_forecast_days: float = settings.MAX_FORECAST_DAYS
    window_days: int = settings.FORECAST_WINDOW_DAYS
    daily_fit_days: float = settings.DAILY_FIT_MIN_DAYS
    shift_min_share: float = settings.LEVEL_SHIFT_MIN_SHARE
    shift_min_steps: float = settings.LEVEL_SHIFT_MIN_STEPS
    break_min_gain: float = settings.TREND_BREAK_MIN_GAIN
    break_min_points: int = settings.TREND_BREAK_MIN_POINTS
    break_min_days: float = settings.TREND_BREAK_MIN_DAYS
    backtest_slack_days: float = settings.BACKTEST_SLACK_DAYS
    history_every_build_days: int = settings.FORECAST_HISTORY_EVERY_BUILD_DAYS

    def bindings(self, as_of: datetime, built_at: datetime) -> dict[str, Any]:
        """Every named parameter a model may use."""
        normal = NormalDist()
        return {
            "as_of": as_of,
            "built_at": built_at,
            "critical_days": self.critical_days,
            "warning_days": self.warning_days,
            "stale_after": self.stale_after,
            "min_history_hours": self.min_history_hours,
            "min_observations": self.min_observations,
            "z_interval": normal.inv_cdf(0.5 + self.interval_coverage / 2),
            "z_trend": normal.inv_cdf(self.trend_confidence),
            "max_forecast_days": self.max_forecast_days,
            "window_days": self.window_days,
            "daily_fit_days": self.daily_fit_days,
            "shift_min_share": self.shift_min_share,
            "shift_min_steps": self.shift_min_steps,
            "break_min_gain": self.break_min_gain,
            "break_min_points": self.break_min_points,
            "break_min_days": self.break_min_days,
            "backtest_slack_days": self.backtest_slack_days,
            "history_every_build_days": self.history_every_build_days,
        }


@dataclass(frozen=True)
class BuildResult:
    """What one build produced: rows per table, at-risk volumes, timing, published paths."""

    path: Path
    as_of: datetime
    rows: dict[str, int]
    columns: dict[str, list[tuple[str, str]]]
    critical: int
    warning: int
    seconds: float
    parquet: dict[str, Path] = field(default_factory=dict)
    #: seconds per model plus "export" (Parquet) — where a build's time goes
    timings: dict[str, float] = field(default_factory=dict)
    #: "full", or "incremental" (day-grained rows rebuilt from `since` on)
    mode: str = "full"
    since: date | None = None
    #: why an incremental build was not possible (empty when it was, or was not asked for)
    full_reason: str = ""
    #: bytes DuckDB spilled under the data dir (past its memory limit)
    spilled_bytes: int = 0

    def summary(self) -> str:
        """One line for the CLI."""
        how = f"incremental from {self.since}" if self.mode == "incremental" else "full"
        return (
            f"built {len(self.rows)} tables, {self.rows.get('volume_snapshots', 0):,} snapshot rows, "
            f"{self.rows.get('volume_risk', 0):,} active volumes "
            f"({self.critical} critical, {self.warning} warning) "
            f"as of {self.as_of.isoformat()} in {self.seconds:.1f}s ({how})"
        )


def build_summary(rows: dict[str, int], critical: int, warning: int) -> str:
    """The CLI's line for a build: tables, rows, and volumes at risk."""
    total = sum(rows.values())
    return (
        f"built {len(rows)} tables ({total:,} rows; volume_risk {rows.get('volume_risk', 0):,})"
        f" — {critical} critical, {warning} warning"
    )


def warehouse_path(data_dir: Path) -> Path:
    """Where the published warehouse lives."""
    return Path(data_dir) / WAREHOUSE_FILE


def lake_dir(data_dir: Path) -> Path:
    """The lake table's root (Hive-partitioned by snapshot_date)."""
    return Path(data_dir) / "lake" / LAKE_TABLE


def lake_files(data_dir: Path) -> list[Path]:
    """Snapshot files currently in the lake."""
    return sorted(lake_dir(data_dir).glob("snapshot_date=*/*.parquet"))


def connect_published(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse (what BI tools and checks use)."""
    path = warehouse_path(data_dir)
    if not path.exists():
        raise BuildError(f"no warehouse at {path}: run a build first")
    return duckdb.connect(str(path), read_only=True)


def _lake_file_groups(data_dir: Path, since: date = EPOCH) -> tuple[list[str], list[str]]:
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
    for folder in sorted(lake_dir(data_dir).glob("snapshot_date=*")):
        day = _folder_day(folder.name)
        if day is not None and day < since:
            continue
        files = sorted(folder.glob("*.parquet"))
        whole_day = [f for f in files if not _SLUG_FILE.match(f.name)]
        (overlapping if len(files) > 1 and whole_day else unique).extend(str(f) for f in files)
    return unique, overlapping


def _lake_columns() -> str:
    """The lake's columns cast to the contract's types (`source` defaults to 'default')."""
    # imported here: the contract module loads polars, which a build does not otherwise need
    from pipelines.contract import LAKE_DUCKDB_TYPES

    return ",\n    ".join(
        f"cast(coalesce({name}, 'default') as {duckdb_type}) as {name}"
        if name == "source"
        else f"cast({name} as {duckdb_type}) as {name}"
        for name, duckdb_type in LAKE_DUCKDB_TYPES.items()
    )


def _lake_select(files: str, *, deduplicate: bool) -> str:
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
            "partition by coalesce(source, 'default'), volume_id, snapshot_at"
            " order by observed_at desc nulls last) = 1"
        )
    return select


def create_lake_view(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    since: date = EPOCH,
    name: str = "lake_volume_snapshots",
) -> None:
    """Declare a temporary view `name` over the lake with the contract's types, one row per
    (source, volume_id, snapshot_at): a snapshot stored twice keeps the row observed last.

    DuckDB cannot prepare a parameter inside CREATE VIEW, so the file lists are bound into
    session variables and the view reads them with getvariable(). With `since`, only the day
    folders from that day on are listed.
    """
    unique, overlapping = _lake_file_groups(data_dir, since)
    parts = []
    if unique or not overlapping:
        # an empty lake keeps the glob, so reading it fails as it always did
        empty = str(lake_dir(data_dir) / "snapshot_date=*" / "*.parquet")
        con.execute(f"set variable {name}_unique = ?", [unique or [empty]])
        parts.append(_lake_select(f"getvariable('{name}_unique')", deduplicate=False))
    if overlapping:
        con.execute(f"set variable {name}_overlapping = ?", [overlapping])
        parts.append(_lake_select(f"getvariable('{name}_overlapping')", deduplicate=True))
    con.execute(
        f"create or replace temp view {name} as\n"
        + "\nunion all\n".join(f"({part})" for part in parts)
    )


def _sql_string(value: str) -> str:
    """A SQL string literal. Only for CREATE VIEW, which cannot take prepared parameters."""
    return "'" + value.replace("'", "''") + "'"


def _link_or_copy(source: Path, target: Path) -> None:
    mkdir_private(target.parent)
    try:
        os.link(source, target)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise BuildError(f"lake file {source} vanished during the build: retry") from None
        # a filesystem without hard links: a copy is slower but as stable
        shutil.copy2(source, target)


def _link_lake(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    manifest: dict[str, _LakeFile],
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
    root = lake_dir(data_dir)
    days: dict[str, list[str]] = {}
    for path in manifest:
        days.setdefault(path.split("/", 1)[0], []).append(path)
    for folder, paths in sorted(days.items()):
        whole_day = [p for p in paths if not _SLUG_FILE.match(p.rsplit("/", 1)[-1])]
        if len(paths) > 1 and whole_day:
            out = target / "current" / folder / "deduplicated.parquet"
            mkdir_private(out.parent)
            files = [str(root / p) for p in sorted(paths)]
            con.execute("set variable overlapping_day = ?", [files])
            select = _lake_select("getvariable('overlapping_day')", deduplicate=True)
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
            glob = _sql_string(str(target.resolve() / group / "*" / "*.parquet"))
            parts.append(_lake_select(glob, deduplicate=False))
    con.execute(
        f"create or replace view {STAGING_SCHEMA}.lake_volume_snapshots as\n"
        + "\nunion all\n".join(f"({part})" for part in parts)
    )


def _has_source(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    manifest: dict[str, _LakeFile],
    known: dict[tuple[str, int], bool],
) -> dict[str, bool]:
    """Whether each lake file has a `source` column: from `known` (by path and inode, what the
    previous build found) or from the footers of the files it does not know."""
    found = {path: known.get((path, entry.inode)) for path, entry in manifest.items()}
    unknown = [path for path, value in found.items() if value is None]
    if unknown:
        root = lake_dir(data_dir)
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


def _spill_size(spill: Path) -> int:
    """Bytes in DuckDB's spill files now (they keep their size until DuckDB drops them)."""
    total = 0
    for path in spill.glob("*") if spill.exists() else ():
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def _retire_links(root: Path, current: str) -> None:
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
            _remove(folder)


def _literal(value: Any) -> str:
    """A SQL literal for a view's parameter: CREATE VIEW cannot take prepared parameters."""
    if isinstance(value, datetime):
        return f"timestamptz {_sql_string(value.astimezone(UTC).isoformat())}"
    if isinstance(value, date):
        return f"date {_sql_string(value.isoformat())}"
    raise BuildError(f"a view model cannot bind {type(value).__name__} parameters")


def run_model(con: duckdb.DuckDBPyConnection, model: Model, bindings: dict[str, Any]) -> None:
    """Materialize one model as a table (or, `-- materialized: view`, a view) named after it,
    binding only the parameters it uses."""
    missing = set(model.parameters) - bindings.keys()
    if missing:
        raise BuildError(f"model {model.name} uses unknown parameters: {sorted(missing)}")
    body = model.sql.strip().rstrip(";")
    if model.materialized == "view":
        for name in sorted(model.parameters, key=len, reverse=True):
            body = re.sub(rf"\${name}\b", _literal(bindings[name]), body)
        # a view is bound when read, without the build's search path: outside `main`, name the
        # schema (a reader's `from volume_snapshots` would not find `lake_volume_snapshots`)
        for relation in (*model.deps, *model.sources):
            if schema_of(relation) != "main":
                body = re.sub(rf"(?<![.\w]){relation}\b", f"{STAGING_SCHEMA}.{relation}", body)
        con.execute(f"create or replace view {qualified(model.name)} as\n{body}")
        return
    con.execute(
        f"create or replace table {qualified(model.name)} as\n{body}",
        {name: bindings[name] for name in model.parameters},
    )


def _build_lock(data_dir: Path, timeout: float) -> contextlib.AbstractContextManager[None]:
    lock_path = Path(data_dir) / f"{WAREHOUSE_FILE}.lock"
    return exclusive_lock(lock_path, timeout, BuildError(f"another build holds {lock_path}"))


def _remove(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def _clean_stale(data_dir: Path) -> None:
    """Remove leftovers of killed builds (safe: we hold the build lock)."""
    for leftover in Path(data_dir).glob(f"{WAREHOUSE_FILE}.*.building*"):
        _remove(leftover)
    for leftover in (Path(data_dir) / MARTS_DIR).glob("*.parquet.*.tmp"):
        leftover.unlink(missing_ok=True)


def _load_previous_history(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Copy the published warehouse's forecast history into `previous_quota_forecast_history`.

    The published file is attached read-only; if a process holds it open read-write (a DuckDB
    CLI without -readonly) the lock refuses the attach, so the Parquet export is used instead.
    """
    published = warehouse_path(data_dir)
    exported = Path(data_dir) / MARTS_DIR / "quota_forecast_history.parquet"
    loaded = False
    if published.exists():
        try:
            con.execute("attach ? as previous_warehouse (read_only)", [str(published)])
        except duckdb.Error:
            pass
        else:
            try:
                found = con.execute(
                    "select count(*) from duckdb_tables() "
                    "where database_name = 'previous_warehouse' "
                    "and table_name = 'quota_forecast_history'"
                ).fetchone()
                if found and found[0]:
                    con.execute(
                        "create or replace temp table previous_quota_forecast_history as "
                        "select * from previous_warehouse.quota_forecast_history"
                    )
                    loaded = True
            finally:
                con.execute("detach previous_warehouse")
    if not loaded and exported.exists():
        con.execute(
            "create or replace temp table previous_quota_forecast_history as "
            "select * from read_parquet(?)",
            [str(exported)],
        )
        loaded = True
    if not loaded:
        con.execute(
            "create or replace temp table previous_quota_forecast_history (as_of timestamptz)"
        )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    row = con.execute(sql, params).fetchone()
    return row[0] if row else None


def forecast_problems(con: duckdb.DuckDBPyConnection, table: str = "quota_forecast") -> int:
    """Rows breaking forecast sanity: negative days, or low <= point <= high violated."""
    return int(
        _scalar(
            con,
            f"""
            select count(*) from "{table}"
            where days_to_full < 0 or days_to_full_low < 0 or days_to_full_high < 0
                or days_to_full_low > days_to_full or days_to_full > days_to_full_high
            """,
        )
    )


def _verify(
    con: duckdb.DuckDBPyConnection, rows: dict[str, int], since: date | None = None
) -> None:
    """Refuse to publish a build with duplicate snapshots or forecasts that break sanity.

    After an incremental build only the rebuilt days can hold duplicates: the caller has checked
    that no rebuilt lake row falls before `since`, and the earlier rows were verified before.
    """
    problems = []
    if rows["volume_snapshots"] == 0 and _scalar(
        con, "select count(*) from (from lake_volume_snapshots limit 1)"
    ):  # an empty lake (a fleet with no volumes yet) builds an empty warehouse
        problems.append("volume_snapshots is empty")
    duplicates = _scalar(
        con,
        "select count(*) - count(distinct (source, volume_id, snapshot_at)) "
        "from volume_snapshots where snapshot_at >= $since",
        {"since": datetime.combine(since or EPOCH, datetime.min.time(), UTC)},
    )
    if duplicates:
        problems.append(f"{duplicates} duplicate (source, volume_id, snapshot_at) rows")
    active = _scalar(con, "select count(*) from volumes where is_active")
    if rows["quota_forecast"] != 2 * active:
        problems.append(f"quota_forecast has {rows['quota_forecast']} rows for {active} volumes")
    if rows["volume_risk"] != active:
        problems.append(f"volume_risk has {rows['volume_risk']} rows for {active} volumes")
    if bad := forecast_problems(con):
        problems.append(f"{bad} quota_forecast rows fail sanity")
    if problems:
        raise BuildError("verification failed: " + "; ".join(problems))


def _folder_day(name: str) -> date | None:
    """The day of a `snapshot_date=YYYY-MM-DD` folder (None for any other name)."""
    key, _, value = name.partition("=")
    if key != "snapshot_date":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _latest_file_instant(data_dir: Path) -> datetime:
    """The latest snapshot instant the lake's file names give (a compacted day counts from its
    start): the as_of of a lake whose snapshots hold no rows, which no row can give."""
    instants = []
    for file in lake_files(data_dir):
        if _SLUG_FILE.match(file.name):
            instants.append(datetime.strptime(file.name[:14], "%Y%m%dT%H%MZ").replace(tzinfo=UTC))
        elif (day := _folder_day(file.parent.name)) is not None:
            instants.append(datetime.combine(day, datetime.min.time(), UTC))
    if not instants:
        raise EmptyLakeError(f"the lake under {lake_dir(data_dir)} has no rows")
    return max(instants)


@dataclass(frozen=True)
class _LakeFile:
    day: date | None
    size: int
    mtime_ns: int
    #: a rerun or a compaction writes a new file and renames it over: a new inode
    inode: int


def _lake_manifest(data_dir: Path) -> dict[str, _LakeFile]:
    """Every lake file (by path under the lake table) with its day, size and mtime.

    Taken before the lake is read: a file replaced while the build reads it gets a new mtime,
    so the next build sees its day as changed (never the other way round).
    """
    root = lake_dir(data_dir)
    manifest = {}
    for path in lake_files(data_dir):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        relative = path.relative_to(root)
        manifest[relative.as_posix()] = _LakeFile(
            _folder_day(relative.parts[0]), stat.st_size, stat.st_mtime_ns, stat.st_ino
        )
    return manifest


def _fingerprint() -> str:
    """What the warehouse's tables depend on besides the lake: the models and the engine."""
    from pipelines.contract import LAKE_DUCKDB_TYPES

    digest = hashlib.sha256(f"engine {ENGINE_VERSION}\n{LAKE_DUCKDB_TYPES}\n".encode())
    for model in models().values():
        digest.update(f"{model.name}\n{model.sql}\n".encode())
    return digest.hexdigest()


class _FullBuildNeeded(Exception):
    """An incremental build is not possible or not trustworthy; the message says why."""


def _first_changed_day(
    data_dir: Path, manifest: dict[str, _LakeFile], as_of: datetime | None, copy_to: Path
) -> date:
    """Copy the published warehouse to `copy_to` and return the first day to rebuild in it.

    That day is the earliest of: a day whose lake files differ from the previous build's
    manifest (added, removed, replaced, compacted), the previous build's as_of day (its rows
    stop at that instant), and the requested as_of's day. The published file is attached
    read-only during the copy: the shared lock keeps a writer out, so the copy is consistent.
    """
    published = warehouse_path(data_dir)
    if not published.exists():
        raise _FullBuildNeeded("no published warehouse")
    if published.with_name(published.name + ".wal").exists():
        raise _FullBuildNeeded("the published warehouse has a write-ahead log")
    if any(entry.day is None for entry in manifest.values()):
        raise _FullBuildNeeded("a lake file lies outside a snapshot_date=YYYY-MM-DD folder")
    scratch = duckdb.connect()
    try:
        try:
            scratch.execute("attach ? as previous (read_only)", [str(published)])
        except duckdb.Error as error:
            raise _FullBuildNeeded(f"cannot attach the published warehouse: {error}") from None
        tables = {
            f"{schema}.{table}"
            for schema, table in scratch.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = 'previous' "
                "union all select schema_name, view_name from duckdb_views() "
                "where database_name = 'previous' and not internal"
            ).fetchall()
        }
        wanted = {INFO_TABLE, MANIFEST_TABLE, *(f"{schema_of(m)}.{m}" for m in models())}
        if not wanted <= tables:
            raise _FullBuildNeeded("the published warehouse lacks a table (older engine)")
        try:
            info = scratch.execute(
                f"select fingerprint, as_of from previous.{INFO_TABLE}"
            ).fetchall()
            if len(info) != 1 or info[0][0] != _fingerprint():
                raise _FullBuildNeeded("the models or the engine changed since the last build")
            previous_as_of: datetime = info[0][1]
            previous = {
                path: _LakeFile(day, size, mtime_ns, inode)
                for path, day, size, mtime_ns, inode in scratch.execute(
                    f"select path, day, size, mtime_ns, inode from previous.{MANIFEST_TABLE}"
                ).fetchall()
            }
        except duckdb.Error as error:
            raise _FullBuildNeeded(f"unreadable build manifest: {error}") from None
        changed = {
            (manifest.get(path) or previous[path]).day
            for path in manifest.keys() | previous.keys()
            if manifest.get(path) != previous.get(path)
        }
        candidates = {*changed, previous_as_of.astimezone(UTC).date()}
        if as_of is not None:
            candidates.add(as_of.astimezone(UTC).date())
        since = min(day for day in candidates if day is not None)
        if since <= min(entry.day for entry in manifest.values() if entry.day is not None):
            raise _FullBuildNeeded(f"the lake changed from its first day ({since}) on")
        shutil.copyfile(published, copy_to)
        return since
    finally:
        scratch.close()


def _write_manifest(
    con: duckdb.DuckDBPyConnection,
    manifest: dict[str, _LakeFile],
    has_source: dict[str, bool],
    as_of: datetime,
    horizon: datetime,
    since: date,
) -> None:
    paths = sorted(manifest)
    con.execute(
        f"create or replace table {MANIFEST_TABLE} as select "
        "unnest($paths) as path, unnest($days) as day, "
        "unnest($sizes) as size, unnest($mtimes) as mtime_ns, unnest($inodes) as inode, "
        "unnest($has_source) as has_source",
        {
            "has_source": [has_source[p] for p in paths],
            "paths": paths,
            "days": [manifest[p].day for p in paths],
            "sizes": [manifest[p].size for p in paths],
            "mtimes": [manifest[p].mtime_ns for p in paths],
            "inodes": [manifest[p].inode for p in paths],
        },
    )
    con.execute(
        f"create or replace table {INFO_TABLE} as "
        "select $fingerprint as fingerprint, $as_of as as_of, $horizon as steps_horizon, "
        "$since as since",
        {"fingerprint": _fingerprint(), "as_of": as_of, "horizon": horizon, "since": since},
    )


def _prepare_observations_before(
    con: duckdb.DuckDBPyConnection, since: date | None, replaced: str | None
) -> None:
    """Fill the source `volume_observations_before`: for each reconciliation first seen before
    `since` and seen again on or after it (before or after this build), its first sighting and
    the number of its snapshots before `since`. Empty in a full build (`since` None).

    `replaced` names a table of the (source, volume_id, reconciled_at) keys of the snapshot rows this
    build removed, with their counts, taken before volume_snapshots was rebuilt.
    """
    con.execute(
        """
        create or replace temp table volume_observations_before (
            source varchar, volume_id varchar, reconciled_at timestamptz, used_bytes bigint,
            inode_count bigint, first_seen_at timestamptz, snapshot_count bigint
        )
        """
    )
    if since is None or replaced is None:
        return
    con.execute(
        f"""
        insert into volume_observations_before
        with
        touched as (
            select source, volume_id, reconciled_at, n from {replaced}
            union all
            select distinct source, volume_id, last_reconciled_at, 0 from volume_snapshots
            where snapshot_at >= $since and last_reconciled_at is not null
        ),
        removed as (
            select source, volume_id, reconciled_at, sum(n) as n from touched group by all
        )
        select
            observations.source, observations.volume_id, observations.reconciled_at,
            observations.used_bytes,
            observations.inode_count, observations.first_seen_at,
            observations.snapshot_count - removed.n
        from volume_observations as observations
        inner join removed
            on observations.source = removed.source
            and observations.volume_id = removed.volume_id
            and observations.reconciled_at = removed.reconciled_at
        where observations.first_seen_at < $since
            and observations.reconciled_at >= (select min(reconciled_at) from removed)
        """,
        {"since": since},
    )


#: Kept by the engine beside volume_observations (see `_update_observation_steps`).
STEPS_NAME = "volume_observation_steps"
#: kept in staging beside the models it serves (not public: the default schema holds only those)
STEPS_TABLE = f"{STAGING_SCHEMA}.{STEPS_NAME}"
_STEPS = """
    select source, volume_id, reconciled_at, used_bytes, inode_count,
        lag(reconciled_at) over w as previous_reconciled_at,
        lag(used_bytes) over w as used_bytes_previous,
        lag(inode_count) over w as inode_count_previous,
        seed
    from ({rows})
    window w as (partition by source, volume_id order by reconciled_at)
"""


def steps_horizon(as_of: datetime, params: ForecastParams) -> datetime:
    """The first instant `volume_observation_steps` keeps: a whole day before the forecast
    window, so that window and its first step are always inside it."""
    day = datetime.combine(as_of.astimezone(UTC).date(), datetime.min.time(), UTC)
    return day - timedelta(days=params.window_days + 1)


def _update_observation_steps(
    con: duckdb.DuckDBPyConnection,
    since: date | None,
    touched_before: datetime | None,
    horizon: datetime,
    previous_horizon: datetime | None,
) -> None:
    """Keep `volume_observation_steps`: each observation of volume_observations from `horizon`
    on, beside the observation of its volume just before it when that one is from `horizon` on
    too (else null) — what the forecast's per-step statistics read, without sorting its whole
    window on every build.

    A full build (or a horizon moved back) computes it from volume_observations. Otherwise only
    the rows from the earliest observation this build may have changed are recomputed — the
    earliest reconciliation first seen from `since` on, before (`touched_before`) or after this
    build, or merged across `since` — each volume's last kept row seeding its first step; then
    the rows before `horizon` are dropped and steps from them nulled. An observation's usage
    never changes once seen, so the rows before that point stand. Both ways give the same rows.
    """
    rows = "select source, volume_id, reconciled_at, used_bytes, inode_count, false as seed"
    exists = _scalar(
        con,
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = ? and table_name = ?",
        [STAGING_SCHEMA, STEPS_NAME],
    )
    if since is None or previous_horizon is None or horizon < previous_horizon or not exists:
        body = _STEPS.format(rows=f"{rows} from volume_observations where reconciled_at >= $h")
        con.execute(
            f"create or replace table {STEPS_TABLE} as select * exclude (seed) from ({body})",
            {"h": horizon},
        )
        return
    since_at = datetime.combine(since, datetime.min.time(), UTC)
    touched_after = _scalar(
        con,
        "select least("
        "(select min(reconciled_at) from volume_observations where first_seen_at >= $since), "
        "(select min(reconciled_at) from volume_observations_before))",
        {"since": since_at},
    )
    start = min(t for t in (since_at, touched_before, touched_after) if t is not None)
    con.execute(f"delete from {STEPS_TABLE} where reconciled_at >= $start", {"start": start})
    seeds = f"""
        select source, volume_id, max(reconciled_at) as reconciled_at,
            arg_max(used_bytes, reconciled_at) as used_bytes,
            arg_max(inode_count, reconciled_at) as inode_count, true as seed
        from {STEPS_TABLE} group by source, volume_id
    """
    body = _STEPS.format(
        rows=f"{rows} from volume_observations where reconciled_at >= $start union all {seeds}"
    )
    con.execute(
        f"insert into {STEPS_TABLE} select * exclude (seed) from ({body}) where not seed",
        {"start": start},
    )
    con.execute(f"delete from {STEPS_TABLE} where reconciled_at < $h", {"h": horizon})
    con.execute(
        f"""
        update {STEPS_TABLE}
        set previous_reconciled_at = null, used_bytes_previous = null,
            inode_count_previous = null
        where previous_reconciled_at < $h
        """,
        {"h": horizon},
    )


HISTORY_TABLE = "quota_forecast_history"


def _append_history(con: duckdb.DuckDBPyConnection, bindings: dict[str, Any]) -> None:
    """An incremental build's quota_forecast_history: its copy of the published one, less the
    rows sql/marts/quota_forecast_history.sql drops (this as_of's, and the older builds that
    are not the last of their UTC day), plus this build's forecasts — the model's rows,
    without re-reading every earlier build's (the table grows with the builds kept)."""
    con.execute(f"delete from {HISTORY_TABLE} where as_of = $as_of", {"as_of": bindings["as_of"]})
    con.execute(
        f"""
        delete from {HISTORY_TABLE}
        where as_of < $as_of - to_days(cast($history_every_build_days as integer))
            and as_of not in (
                select max(as_of) from {HISTORY_TABLE} group by cast(as_of as date)
            )
        """,
        {
            "as_of": bindings["as_of"],
            "history_every_build_days": bindings["history_every_build_days"],
        },
    )
    con.execute(
        f"insert into {HISTORY_TABLE} by name select *, $built_at as built_at from quota_forecast",
        {"built_at": bindings["built_at"]},
    )


def _replace_from(
    con: duckdb.DuckDBPyConnection, model: Model, bindings: dict[str, Any], since: date
) -> None:
    """Delete a day-grained model's rows from `since` on and insert the model's rows for them."""
    column = model.incremental
    kind = _scalar(
        con,
        "select data_type from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? and table_name = ? and column_name = ?",
        [schema_of(model.name), model.name, column],
    )
    if kind is None:
        raise _FullBuildNeeded(f"{model.name} has no column {column}")
    bound: date | datetime = since
    if kind.startswith("TIMESTAMP"):
        bound = datetime(since.year, since.month, since.day, tzinfo=UTC)
    con.execute(f'delete from "{model.name}" where "{column}" >= $since', {"since": bound})
    if model.name == "volume_observations":
        # reconciliations first seen earlier are rebuilt whole from their earlier part
        con.execute(
            """
            delete from volume_observations
            where (source, volume_id, reconciled_at) in (
                select (source, volume_id, reconciled_at) from volume_observations_before
            )
            """
        )
    body = model.sql.strip().rstrip(";")
    con.execute(
        f'insert into "{model.name}" by name\n{body}',
        {name: bindings[name] for name in model.parameters},
    )


def build_warehouse(
    data_dir: Path,
    *,
    full: bool = False,
    as_of: datetime | None = None,
    params: ForecastParams | None = None,
    export_parquet: bool = True,
    lock_timeout: float = 600.0,
    memory_limit: str | None = None,
    remote: Remote | None = None,
    threads: int | None = None,
) -> BuildResult:
    """Build every model from the lake into a new file, verify, and publish it atomically.

    Incremental unless `full` (or unless the published warehouse is missing, from an older
    engine or other models, or the lake changed from its first day on): the new file starts as
    a copy of the published one and only the days from the first changed one are rebuilt. An
    incremental build that fails verification is retried as a full one.

    The published `warehouse.duckdb` is replaced with os.replace: readers holding the old file
    keep reading it; new connections see the new build. An empty lake raises EmptyLakeError
    and leaves any published warehouse untouched (an empty build would hide the last good one).

    With a `remote` (the data dir is an object-store URL), the cached lake is first brought in
    line with the bucket, and the verified build is uploaded (marts, then `warehouse.duckdb`)
    before it replaces the local one: a refused upload leaves both as they were.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    params = params or ForecastParams()
    # beyond the limit DuckDB spills under the data dir instead of failing or swapping
    memory_limit = memory_limit or config.build_memory_limit()
    if remote is not None:
        remote.pull(lake_dir(data_dir))
        # a fresh cache starts from the bucket's warehouse: it carries the forecast history
        remote.fetch_missing([warehouse_path(data_dir)])
    if not lake_files(data_dir):
        raise EmptyLakeError(f"the lake has no snapshot files under {lake_dir(data_dir)}")
    if as_of is not None and as_of.tzinfo is None:
        raise BuildError("as_of must be timezone-aware")

    with _build_lock(data_dir, lock_timeout):
        _clean_stale(data_dir)
        manifest = _lake_manifest(data_dir)
        reason = "asked for a full build"
        build = functools.partial(
            _build,
            data_dir,
            manifest,
            started,
            as_of,
            params,
            export_parquet,
            memory_limit,
            remote,
            threads,
        )
        if not full:
            try:
                return build(incremental=True)
            except _FullBuildNeeded as why:
                reason = str(why)
                log.info("full build: %s", reason)
        result = build(incremental=False)
        return dataclasses.replace(result, full_reason=reason)


#: The oldest DuckDB release that must be able to open the warehouse.
STORAGE_COMPATIBILITY = "v1.5.0"


def _build(
    data_dir: Path,
    manifest: dict[str, _LakeFile],
    started: float,
    as_of: datetime | None,
    params: ForecastParams,
    export_parquet: bool,
    memory_limit: str,
    remote: Remote | None,
    threads: int | None,
    *,
    incremental: bool,
) -> BuildResult:
    token = uuid.uuid4().hex
    building = data_dir / f"{WAREHOUSE_FILE}.{token}.building"
    marts_dir = data_dir / MARTS_DIR
    staged: dict[str, tuple[Path, Path]] = {}
    since: date | None = None
    links = data_dir / LAKE_LINKS_DIR / token
    try:
        timings: dict[str, float] = {}
        if incremental:
            step = time.perf_counter()
            since = _first_changed_day(data_dir, manifest, as_of, building)
            timings["copy"] = round(time.perf_counter() - step, 3)
        spill = data_dir / f"{WAREHOUSE_FILE}.{token}.building.tmp"
        spilled = 0
        con = duckdb.connect(
            str(building),
            config={
                # beyond the limit DuckDB spills to disk instead of failing or swapping
                "memory_limit": memory_limit,
                "temp_directory": str(spill),
                # no model relies on row order; keeping it costs memory in every CTAS
                "preserve_insertion_order": False,
                # readable by DuckDB 1.5 clients too: the DuckDB CLI on PyPI (`make sql`) and
                # the DuckDB drivers BI tools bundle lag the Python package's 2.x format
                "storage_compatibility_version": STORAGE_COMPATIBILITY,
                # one thread makes what spills, and when, the same on every run (tests)
                **({"threads": threads} if threads else {}),
            },
        )
        try:
            os.chmod(building, FILE_MODE)
            con.execute("set timezone = 'UTC'")
            con.execute("set enable_progress_bar = false")
            for schema in (STAGING_SCHEMA, BUILD_SCHEMA):
                con.execute(f"create schema if not exists {schema}")
            # models name each other unqualified
            con.execute(f"set search_path = 'main,{STAGING_SCHEMA}'")
            create_lake_view(con, data_dir, since or EPOCH, name="changed_lake_snapshots")
            if as_of is None:
                as_of = _scalar(con, "select max(snapshot_at) from changed_lake_snapshots")
                if as_of is None:
                    if since is not None:
                        raise _FullBuildNeeded(f"no lake rows from {since} on")
                    # every snapshot is valid and empty (no volumes yet): an empty warehouse
                    as_of = _latest_file_instant(data_dir)
            as_of = as_of.astimezone(UTC)
            if since is not None and as_of.date() < since:
                raise _FullBuildNeeded(f"as_of {as_of} falls before the first changed day")
            if since is not None and _scalar(
                con,
                "select count(*) from changed_lake_snapshots where snapshot_at < $since",
                {"since": datetime.combine(since, datetime.min.time(), UTC)},
            ):
                # rows kept from the previous build are those before `since`: these would
                # duplicate them
                raise _FullBuildNeeded(f"lake files from {since} on hold earlier snapshots")
            if since is None:  # an incremental build keeps the history of its copy
                step = time.perf_counter()
                _load_previous_history(con, data_dir)
                timings["history"] = round(time.perf_counter() - step, 3)
            bindings = {
                **params.bindings(as_of, datetime.now(UTC)),
                "since": since or EPOCH,
            }
            replaced = None
            if since is not None:
                replaced = "replaced_observation_keys"
                con.execute(
                    f"""
                    create temp table {replaced} as
                    select source, volume_id, last_reconciled_at as reconciled_at, count(*) as n
                    from volume_snapshots
                    where snapshot_at >= $since and last_reconciled_at is not null
                    group by all
                    """,
                    {"since": datetime(since.year, since.month, since.day, tzinfo=UTC)},
                )
            touched_before = previous_horizon = None
            if since is not None:
                touched_before = _scalar(
                    con,
                    "select min(reconciled_at) from volume_observations "
                    "where first_seen_at >= $since",
                    {"since": datetime.combine(since, datetime.min.time(), UTC)},
                )
                previous_horizon = _scalar(con, f"select steps_horizon from {INFO_TABLE}")
            horizon = steps_horizon(as_of, params)
            step = time.perf_counter()
            known: dict[tuple[str, int], bool] = {}
            if since is not None:
                known = {
                    (path, inode): has_source
                    for path, inode, has_source in con.execute(
                        f"select path, inode, has_source from {MANIFEST_TABLE}"
                    ).fetchall()
                }
            has_source = _has_source(con, data_dir, manifest, known)
            _link_lake(con, data_dir, manifest, has_source, links)
            timings["lake_links"] = round(time.perf_counter() - step, 3)
            for model in models().values():
                if STEPS_NAME in model.sources and STEPS_NAME not in timings:
                    step = time.perf_counter()
                    _update_observation_steps(con, since, touched_before, horizon, previous_horizon)
                    timings[STEPS_NAME] = round(time.perf_counter() - step, 3)
                step = time.perf_counter()
                if "volume_observations_before" in model.sources:
                    _prepare_observations_before(con, since, replaced)
                if since is not None and model.incremental:
                    _replace_from(con, model, bindings, since)
                elif since is not None and model.name == HISTORY_TABLE:
                    _append_history(con, bindings)
                else:
                    run_model(con, model, bindings)
                timings[model.name] = round(time.perf_counter() - step, 3)
                spilled = max(spilled, _spill_size(spill))
            rows = {
                name: int(_scalar(con, f'select count(*) from "{name}"'))
                for name, model in models().items()
                if model.materialized == "table"
            }
            # counted from its daily rollup: counting the view would read the whole history
            rows["volume_snapshots"] = int(
                _scalar(con, "select coalesce(sum(snapshot_count), 0) from volume_daily")
            )
            try:
                step = time.perf_counter()
                _verify(con, rows, since)
                timings["verify"] = round(time.perf_counter() - step, 3)
            except BuildError as error:
                if since is None:
                    raise
                log.warning("incremental build failed verification (%s)", error)
                raise _FullBuildNeeded(f"incremental build failed verification: {error}") from None
            _write_manifest(con, manifest, has_source, as_of, horizon, since or EPOCH)
            undocumented = apply_comments(con, PUBLIC_TABLES)
            if undocumented:
                log.warning("columns without a description: %s", ", ".join(undocumented))
            columns = {
                name: [(str(c[0]), str(c[1])) for c in con.execute(f'describe "{name}"').fetchall()]
                for name in models()
            }
            risk_counts = dict(
                con.execute("select risk, count(*) from volume_risk group by risk").fetchall()
            )
            step = time.perf_counter()
            if export_parquet:
                mkdir_private(marts_dir)
                for name in EXPORTED_TABLES:
                    final = marts_dir / f"{name}.parquet"
                    temporary = marts_dir / f"{name}.parquet.{token}.tmp"
                    con.execute(
                        f'copy "{name}" to $path (format parquet, compression zstd)',
                        {"path": str(temporary)},
                    )
                    os.chmod(temporary, FILE_MODE)
                    staged[name] = (temporary, final)
            timings["export"] = round(time.perf_counter() - step, 3)
            step = time.perf_counter()
            con.execute("checkpoint")
            timings["checkpoint"] = round(time.perf_counter() - step, 3)
            spilled = max(spilled, _spill_size(spill))
        finally:
            con.close()
        if spill.exists():
            _remove(spill)
        published = warehouse_path(data_dir)
        if remote is not None:
            step = time.perf_counter()
            for temporary, final in staged.values():
                remote.put(temporary, final)
            remote.put(building, published)  # last: the warehouse is the build's commit point
            timings["upload"] = round(time.perf_counter() - step, 3)
        os.replace(building, published)
        for temporary, final in staged.values():
            os.replace(temporary, final)
        for retired in RETIRED_EXPORTS:
            (marts_dir / retired).unlink(missing_ok=True)
        _retire_links(data_dir / LAKE_LINKS_DIR, token)
    except BaseException:
        for leftover in data_dir.glob(f"{WAREHOUSE_FILE}.{token}.building*"):
            _remove(leftover)
        if links.exists():
            _remove(links)
        for temporary, _ in staged.values():
            temporary.unlink(missing_ok=True)
        raise

    return BuildResult(
        path=published,
        as_of=as_of,
        rows=rows,
        columns=columns,
        critical=int(risk_counts.get("critical", 0)),
        warning=int(risk_counts.get("warning", 0)),
        seconds=time.perf_counter() - started,
        parquet={name: final for name, (_, final) in staged.items()},
        timings=timings,
        mode="incremental" if since is not None else "full",
        since=since,
        spilled_bytes=spilled,
    )


#: Why a check has nothing to look at in a warehouse built from empty snapshots.
NO_VOLUMES_YET = "no volumes yet: every snapshot so far was a valid, empty list"


def _no_volumes_yet(con: duckdb.DuckDBPyConnection) -> bool:
    return not _scalar(con, "select count(*) from (from volume_snapshots limit 1)")


@dataclass(frozen=True)
class CheckOutcome:
    """A data-quality check's verdict on the published warehouse, with figures to show."""

    passed: bool
    metadata: dict[str, Any]


def _built_since(con: duckdb.DuckDBPyConnection) -> datetime:
    """The first instant the published build rebuilt: the days before it were checked by the
    builds that made them (the epoch for a full build, or a warehouse without the record)."""
    try:
        since = _scalar(con, f"select since from {INFO_TABLE}")
    except duckdb.Error:
        since = None
    return datetime.combine(since or EPOCH, datetime.min.time(), UTC)


def check_unique_snapshots(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """(source, volume_id, snapshot_at) identifies a row of volume_snapshots (checked on the
    days the last build rebuilt: each earlier day was checked when it was built)."""
    since = _built_since(con)
    duplicates = int(
        _scalar(
            con,
            "select count(*) - count(distinct (source, volume_id, snapshot_at)) "
            "from volume_snapshots where snapshot_at >= $since",
            {"since": since},
        )
    )
    return CheckOutcome(duplicates == 0, {"duplicate_rows": duplicates, "since": since.isoformat()})


def check_non_negative(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """No usage count or limit is negative (on the days the last build rebuilt, as above)."""
    since = _built_since(con)
    negative = int(
        _scalar(
            con,
            """
            select count(*) from volume_snapshots
            where snapshot_at >= $since
                and (used_bytes < 0 or inode_count < 0 or mount_count < 0
                    or max_size_bytes < 0 or max_file_count < 0 or max_mounts < 0)
            """,
            {"since": since},
        )
    )
    return CheckOutcome(negative == 0, {"negative_rows": negative, "since": since.isoformat()})


def check_fresh(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    max_age: timedelta = settings.FRESHNESS_MAX_AGE,
) -> CheckOutcome:
    """Every source's latest snapshot is no older than `max_age` (the stalest one is shown)."""
    now = now or datetime.now(UTC)
    # from the daily rollup: the same instants, without reading the hourly history
    latest = _scalar(
        con,
        "select min(latest) from "
        "(select max(last_snapshot_at) as latest from volume_daily group by source)",
    )
    empty = latest is None
    if empty:  # no volumes yet: the build's as_of is the latest (empty) snapshot
        latest = _scalar(con, f"select max(as_of) from {INFO_TABLE}")
    if latest is None:
        return CheckOutcome(False, {"latest_snapshot_at": "none"})
    age = now - latest
    return CheckOutcome(
        age <= max_age,
        {
            **({"note": NO_VOLUMES_YET} if empty else {}),
            "latest_snapshot_at": latest.isoformat(),
            "age_minutes": round(age.total_seconds() / 60, 1),
            "max_age_minutes": max_age.total_seconds() / 60,
        },
    )


def check_no_missing_snapshots(
    con: duckdb.DuckDBPyConnection,
    *,
    cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES,
    window: timedelta = settings.CHECK_RECENT_WINDOW,
) -> CheckOutcome:
    """Every expected snapshot instant within `window` before the latest one is present, for
    every source (each within the window before its own latest snapshot)."""
    missing = con.execute(
        """
        with
        bounds as (
            -- from the daily rollup: the same instants, without reading the hourly history
            select source, max(last_snapshot_at) as latest, min(first_snapshot_at) as earliest
            from volume_daily
            group by source
        ),
        expected as (
            select source, unnest(generate_series(
                greatest(latest - $window + to_minutes($cadence), earliest),
                latest,
                to_minutes($cadence)
            )) as snapshot_at
            from bounds
        ),
        present as (
            select distinct volume_snapshots.source, volume_snapshots.snapshot_at
            from volume_snapshots
            inner join bounds on volume_snapshots.source = bounds.source
            where volume_snapshots.snapshot_at >= bounds.latest - $window
        )
        select snapshot_at, source from expected anti join present using (source, snapshot_at)
        order by snapshot_at, source
        """,
        {"window": window, "cadence": cadence_minutes},
    ).fetchall()
    if not missing and _no_volumes_yet(con):
        return CheckOutcome(True, {"skipped": NO_VOLUMES_YET, "cadence_minutes": cadence_minutes})
    return CheckOutcome(
        not missing,
        {
            "missing_snapshots": len(missing),
            "first_missing": missing[0][0].isoformat() if missing else "none",
            "first_missing_source": missing[0][1] if missing else "none",
            "cadence_minutes": cadence_minutes,
        },
    )


def check_row_count_stable(
    con: duckdb.DuckDBPyConnection,
    *,
    max_drop_share: float = settings.ROW_DROP_WARN_SHARE,
    window: timedelta = settings.CHECK_RECENT_WINDOW,
) -> CheckOutcome:
    """No snapshot within `window` of the latest has `max_drop_share` fewer rows than the one
    before it (a partial fetch, or a mass delete worth a look)."""
    row = con.execute(
        """
        with
        counts as (
            select source, snapshot_at, count(*) as n from volume_snapshots
            where snapshot_at >= (select max(last_snapshot_at) from volume_daily) - $window
            group by source, snapshot_at
        ),
        drops as (
            select source, snapshot_at, n,
                lag(n) over (partition by source order by snapshot_at) as previous
            from counts
        )
        select snapshot_at, n, previous, 1 - n / previous as drop_share, source
        from drops where previous is not null
        order by drop_share desc limit 1
        """,
        {"window": window},
    ).fetchone()
    if row is None:
        if _no_volumes_yet(con):
            return CheckOutcome(True, {"skipped": NO_VOLUMES_YET})
        return CheckOutcome(True, {"worst_drop_share": 0.0})
    snapshot_at, n, previous, drop_share, source = row
    return CheckOutcome(
        drop_share <= max_drop_share,
        {
            "worst_drop_share": round(float(drop_share), 4),
            "source": source,
            "at": snapshot_at.isoformat(),
            "rows": int(n),
            "previous_rows": int(previous),
        },
    )


def check_forecast_sanity(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """days_to_full >= 0 and days_to_full_low <= days_to_full <= days_to_full_high."""
    bad = forecast_problems(con)
    return CheckOutcome(bad == 0, {"bad_rows": bad})


def top_at_risk(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[dict[str, Any]]:
    """The most urgent volumes from volume_risk, in its `risk_rank` (already full, then by how
    soon they may fill)."""
    cursor = con.execute(
        """
        select source, volume_id, name, binding_resource, utilization, days_to_full, full_at,
            state, risk
        from volume_risk
        where risk <> 'ok'
        order by risk_rank
        limit $limit
        """,
        {"limit": limit},
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
