"""Build engine: run the SQL models into a fresh DuckDB file, verify it, swap it in atomically."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import duckdb

from pipelines import settings
from pipelines.contract import LAKE_DUCKDB_TYPES
from pipelines.models import Model, models

WAREHOUSE_FILE = "warehouse.duckdb"
LAKE_TABLE = "volume_snapshots"
MARTS_DIR = "marts"
FILE_MODE = 0o640
DIR_MODE = 0o750

#: Tables verified before publishing and exported to `marts/<table>.parquet`.
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
)


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

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"built {len(self.rows)} tables, {self.rows.get('volume_snapshots', 0):,} snapshot rows, "
            f"{self.rows.get('volume_risk', 0):,} active volumes "
            f"({self.critical} critical, {self.warning} warning) "
            f"as of {self.as_of.isoformat()} in {self.seconds:.1f}s"
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


def create_lake_view(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Declare the lake source view `lake_volume_snapshots` with the contract's types.

    DuckDB cannot prepare a parameter inside CREATE VIEW, so the glob is bound into a session
    variable and the (temporary) view reads it with getvariable().
    """
    glob = str(lake_dir(data_dir) / "snapshot_date=*" / "*.parquet")
    con.execute("set variable lake_glob = ?", [glob])
    columns = ",\n    ".join(
        f"cast({name} as {duckdb_type}) as {name}"
        for name, duckdb_type in LAKE_DUCKDB_TYPES.items()
    )
    con.execute(
        f"""
        create or replace temp view lake_volume_snapshots as
        select
            {columns},
            snapshot_date
        from read_parquet(
            getvariable('lake_glob'),
            hive_partitioning = true,
            union_by_name = true,
            hive_types = {{'snapshot_date': 'DATE'}}
        )
        """
    )


def run_model(con: duckdb.DuckDBPyConnection, model: Model, bindings: dict[str, Any]) -> None:
    """Materialize one model as a table named after it, binding only the parameters it uses."""
    missing = set(model.parameters) - bindings.keys()
    if missing:
        raise BuildError(f"model {model.name} uses unknown parameters: {sorted(missing)}")
    body = model.sql.strip().rstrip(";")
    con.execute(
        f'create or replace table "{model.name}" as\n{body}',
        {name: bindings[name] for name in model.parameters},
    )


@contextlib.contextmanager
def _build_lock(data_dir: Path, timeout: float) -> Iterator[None]:
    lock_path = Path(data_dir) / f"{WAREHOUSE_FILE}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BuildError(f"another build holds {lock_path}") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


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


def _verify(con: duckdb.DuckDBPyConnection, rows: dict[str, int]) -> None:
    problems = []
    if rows["volume_snapshots"] == 0:
        problems.append("volume_snapshots is empty")
    duplicates = _scalar(
        con,
        "select count(*) - count(distinct (volume_id, snapshot_at)) from volume_snapshots",
    )
    if duplicates:
        problems.append(f"{duplicates} duplicate (volume_id, snapshot_at) rows")
    active = _scalar(con, "select count(*) from volumes where is_active")
    if rows["quota_forecast"] != 2 * active:
        problems.append(f"quota_forecast has {rows['quota_forecast']} rows for {active} volumes")
    if rows["volume_risk"] != active:
        problems.append(f"volume_risk has {rows['volume_risk']} rows for {active} volumes")
    if bad := forecast_problems(con):
        problems.append(f"{bad} quota_forecast rows fail sanity")
    if problems:
        raise BuildError("verification failed: " + "; ".join(problems))


def build_warehouse(
    data_dir: Path,
    *,
    as_of: datetime | None = None,
    params: ForecastParams | None = None,
    export_parquet: bool = True,
    lock_timeout: float = 600.0,
) -> BuildResult:
    """Build every model from the lake into a new file, verify, and publish it atomically.

    The published `warehouse.duckdb` is replaced with os.replace: readers holding the old file
    keep reading it; new connections see the new build. An empty lake raises EmptyLakeError
    and leaves any published warehouse untouched (an empty build would hide the last good one).
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    params = params or ForecastParams()
    if not lake_files(data_dir):
        raise EmptyLakeError(f"the lake has no snapshot files under {lake_dir(data_dir)}")

    with _build_lock(data_dir, lock_timeout):
        _clean_stale(data_dir)
        token = uuid.uuid4().hex
        building = data_dir / f"{WAREHOUSE_FILE}.{token}.building"
        marts_dir = data_dir / MARTS_DIR
        staged: dict[str, tuple[Path, Path]] = {}
        try:
            con = duckdb.connect(str(building))
            try:
                os.chmod(building, FILE_MODE)
                con.execute("set timezone = 'UTC'")
                con.execute("set enable_progress_bar = false")
                create_lake_view(con, data_dir)
                if as_of is None:
                    as_of = _scalar(con, "select max(snapshot_at) from lake_volume_snapshots")
                    if as_of is None:
                        raise EmptyLakeError(f"the lake under {lake_dir(data_dir)} has no rows")
                elif as_of.tzinfo is None:
                    raise BuildError("as_of must be timezone-aware")
                as_of = as_of.astimezone(UTC)
                _load_previous_history(con, data_dir)
                bindings = params.bindings(as_of, datetime.now(UTC))
                timings: dict[str, float] = {}
                for model in models().values():
                    step = time.perf_counter()
                    run_model(con, model, bindings)
                    timings[model.name] = round(time.perf_counter() - step, 3)
                rows = {
                    name: int(_scalar(con, f'select count(*) from "{name}"')) for name in models()
                }
                _verify(con, rows)
                columns = {
                    name: [
                        (str(c[0]), str(c[1])) for c in con.execute(f'describe "{name}"').fetchall()
                    ]
                    for name in models()
                }
                risk_counts = dict(
                    con.execute("select risk, count(*) from volume_risk group by risk").fetchall()
                )
                step = time.perf_counter()
                if export_parquet:
                    marts_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                    for name in PUBLIC_TABLES:
                        final = marts_dir / f"{name}.parquet"
                        temporary = marts_dir / f"{name}.parquet.{token}.tmp"
                        con.execute(
                            f'copy "{name}" to $path (format parquet, compression zstd)',
                            {"path": str(temporary)},
                        )
                        os.chmod(temporary, FILE_MODE)
                        staged[name] = (temporary, final)
                timings["export"] = round(time.perf_counter() - step, 3)
                con.execute("checkpoint")
            finally:
                con.close()
            published = warehouse_path(data_dir)
            os.replace(building, published)
            for temporary, final in staged.values():
                os.replace(temporary, final)
        except BaseException:
            for leftover in data_dir.glob(f"{WAREHOUSE_FILE}.{token}.building*"):
                _remove(leftover)
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
    )


@dataclass(frozen=True)
class CheckOutcome:
    """A data-quality check's verdict on the published warehouse, with figures to show."""

    passed: bool
    metadata: dict[str, Any]


def check_unique_snapshots(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """(volume_id, snapshot_at) identifies a row of volume_snapshots."""
    duplicates = int(
        _scalar(
            con,
            "select count(*) - count(distinct (volume_id, snapshot_at)) from volume_snapshots",
        )
    )
    return CheckOutcome(duplicates == 0, {"duplicate_rows": duplicates})


def check_non_negative(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """No usage count or limit is negative."""
    negative = int(
        _scalar(
            con,
            """
            select count(*) from volume_snapshots
            where used_bytes < 0 or inode_count < 0 or mount_count < 0
                or max_size_bytes < 0 or max_file_count < 0 or max_mounts < 0
            """,
        )
    )
    return CheckOutcome(negative == 0, {"negative_rows": negative})


def check_fresh(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    max_age: timedelta = settings.FRESHNESS_MAX_AGE,
) -> CheckOutcome:
    """The latest snapshot is no older than `max_age`."""
    now = now or datetime.now(UTC)
    latest = _scalar(con, "select max(snapshot_at) from volume_snapshots")
    if latest is None:
        return CheckOutcome(False, {"latest_snapshot_at": "none"})
    age = now - latest
    return CheckOutcome(
        age <= max_age,
        {
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
    """Every expected snapshot instant within `window` before the latest one is present."""
    missing = con.execute(
        """
        with
        bounds as (
            select max(snapshot_at) as latest, min(snapshot_at) as earliest
            from volume_snapshots
        ),
        expected as (
            select unnest(generate_series(
                greatest(latest - $window + to_minutes($cadence), earliest),
                latest,
                to_minutes($cadence)
            )) as snapshot_at
            from bounds
        ),
        present as (
            select distinct snapshot_at from volume_snapshots
            where snapshot_at >= (select latest - $window from bounds)
        )
        select snapshot_at from expected anti join present using (snapshot_at)
        order by snapshot_at
        """,
        {"window": window, "cadence": cadence_minutes},
    ).fetchall()
    return CheckOutcome(
        not missing,
        {
            "missing_snapshots": len(missing),
            "first_missing": missing[0][0].isoformat() if missing else "none",
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
            select snapshot_at, count(*) as n from volume_snapshots
            where snapshot_at >= (select max(snapshot_at) from volume_snapshots) - $window
            group by snapshot_at
        ),
        drops as (
            select snapshot_at, n, lag(n) over (order by snapshot_at) as previous from counts
        )
        select snapshot_at, n, previous, 1 - n / previous as drop_share
        from drops where previous is not null
        order by drop_share desc limit 1
        """,
        {"window": window},
    ).fetchone()
    if row is None:
        return CheckOutcome(True, {"worst_drop_share": 0.0})
    snapshot_at, n, previous, drop_share = row
    return CheckOutcome(
        drop_share <= max_drop_share,
        {
            "worst_drop_share": round(float(drop_share), 4),
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
    """The most urgent volumes from volume_risk: critical first, then soonest full."""
    cursor = con.execute(
        """
        select volume_id, name, binding_resource, utilization, days_to_full, full_at, state, risk
        from volume_risk
        where risk <> 'ok'
        order by case risk when 'critical' then 0 else 1 end, days_to_full, volume_id
        limit $limit
        """,
        {"limit": limit},
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
