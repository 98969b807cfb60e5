"""Build engine: run the SQL models into a new DuckDB file, verify it, swap it in atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipelines import config, publish
from pipelines.catalog import apply_comments
from pipelines.lake import DataDir, exclusive_lock
from pipelines.models import Model, models
from pipelines.objectstore import Remote
from pipelines.warehouse import observations
from pipelines.warehouse.checks import violations
from pipelines.warehouse.errors import BuildError, EmptyLakeError, FullBuildNeeded
from pipelines.warehouse.incremental import (
    Provision,
    append,
    check_full_when,
    first_changed_day,
    keep_observations,
    kept_horizon,
    params_fingerprints,
    provider,
    read_copy,
    replace_from,
    write_manifest,
)
from pipelines.warehouse.lake_view import (
    LakeFile,
    create_lake_view,
    files_with_source,
    lake_manifest,
    latest_file_instant,
    link_lake,
    remove,
    retire_links,
)
from pipelines.warehouse.params import ForecastParams, observations_horizon, steps_horizon
from pipelines.warehouse.schema import (
    BUILD_SCHEMA,
    DAY_EXPORTS,
    EPOCH,
    EXPORTED_TABLES,
    MANIFEST_TABLE,
    PUBLIC_TABLES,
    RETIRED_EXPORTS,
    STAGING_SCHEMA,
    midnight,
    qualified,
    scalar,
    schema_of,
    sql_string,
)

log = logging.getLogger(__name__)


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
    #: the published Parquet files by table (a folder of one file per day for DAY_EXPORTS)
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
    #: a full build: the instant it grouped the lake's snapshots into observations from (the
    #: observations horizon, pipelines/warehouse/observations.py); None: the whole lake
    observations_from: datetime | None = None

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


def _spill_size(spill: Path) -> int:
    """Bytes in DuckDB's spill files now (they keep their size until DuckDB drops them)."""
    total = 0
    for path in spill.glob("*") if spill.exists() else ():
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def _literal(value: Any) -> str:
    """A SQL literal for a view's parameter: CREATE VIEW cannot take prepared parameters."""
    if isinstance(value, datetime):
        return f"timestamptz {sql_string(value.astimezone(UTC).isoformat())}"
    if isinstance(value, date):
        return f"date {sql_string(value.isoformat())}"
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


def _build_lock(layout: DataDir, timeout: float) -> contextlib.AbstractContextManager[None]:
    lock_path = _beside(layout.warehouse, "lock")
    return exclusive_lock(lock_path, timeout, BuildError(f"another build holds {lock_path}"))


def _beside(published: Path, suffix: str) -> Path:
    """A file next to the published warehouse: `warehouse.duckdb.<suffix>`."""
    return published.with_name(f"{published.name}.{suffix}")


def _clean_stale(layout: DataDir) -> None:
    """Remove leftovers of killed builds (safe: we hold the build lock)."""
    for leftover in layout.root.glob(f"{layout.warehouse.name}.*.building*"):
        remove(leftover)
    for leftover in layout.marts.glob("*.parquet.*.tmp"):
        leftover.unlink(missing_ok=True)
    for leftover in layout.marts.glob("*/.*.parquet.*.tmp"):
        leftover.unlink(missing_ok=True)
    for leftover in layout.marts.glob("*/.*.partitions"):
        remove(leftover)


def _verify(
    con: duckdb.DuckDBPyConnection, rows: dict[str, int], since: date | None = None
) -> None:
    """Refuse to publish a build with duplicate snapshots or forecasts that break sanity.

    After an incremental build only the rebuilt days can hold duplicates: the caller has checked
    that no rebuilt lake row falls before `since`, and the earlier rows were verified before.
    """
    problems = []
    if rows["volume_snapshots"] == 0 and scalar(
        con, "select count(*) from (from lake_volume_snapshots limit 1)"
    ):  # an empty lake (a fleet with no volumes yet) builds an empty warehouse
        problems.append("volume_snapshots is empty")
    since_at = midnight(since or EPOCH)
    # a 64-bit hash of the key counted first (3x faster than grouping the key, the longest step
    # of verifying a full build): a collision can only suggest a duplicate that is not one, so
    # only then does the check's own query group the keys themselves
    maybe_duplicated = scalar(
        con,
        "select count(*) - count(distinct hash(source, volume_id, snapshot_at)) "
        "from volume_snapshots where snapshot_at >= $since",
        {"since": since_at},
    )
    if maybe_duplicated and (
        duplicated := violations(con, "unique_volume_snapshots", since=since_at).count
    ):
        problems.append(f"{duplicated} (source, volume_id, snapshot_at) keys stored twice")
    active = scalar(con, "select count(*) from volumes where is_active")
    if rows["quota_forecast"] != 2 * active:
        problems.append(f"quota_forecast has {rows['quota_forecast']} rows for {active} volumes")
    if rows["volume_risk"] != active:
        problems.append(f"volume_risk has {rows['volume_risk']} rows for {active} volumes")
    if bad := violations(con, "forecast_sane").count:
        problems.append(f"{bad} quota_forecast rows fail sanity")
    if problems:
        raise BuildError("verification failed: " + "; ".join(problems))


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
    compact_free_share: float | None = None,
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

    A full build whose file is at least `compact_free_share` (default `COMPACT_FREE_SHARE`)
    free blocks, or an incremental one twice that, is first copied into a fresh, compact file.
    """
    started = time.perf_counter()
    layout = DataDir(Path(data_dir), remote=remote)
    # beyond the limit DuckDB spills under the data dir instead of failing or swapping
    memory_limit = memory_limit or config.build_memory_limit()
    if remote is not None:
        layout.pull_lake()
        # a fresh cache starts from the bucket's warehouse: it carries the forecast history
        remote.fetch_missing([layout.warehouse])
    if not layout.lake_files():
        raise EmptyLakeError(f"the lake has no snapshot files under {layout.lake}")
    if as_of is not None and as_of.tzinfo is None:
        raise BuildError("as_of must be timezone-aware")

    with _build_lock(layout, lock_timeout):
        _clean_stale(layout)
        plan = BuildPlan(
            layout=layout,
            manifest=lake_manifest(layout),
            started=started,
            as_of=as_of,
            params=params or ForecastParams(),
            export_parquet=export_parquet,
            memory_limit=memory_limit,
            threads=threads,
            compact_free_share=COMPACT_FREE_SHARE
            if compact_free_share is None
            else compact_free_share,
        )
        reason = "asked for a full build"
        if not full:
            try:
                return _build(plan, incremental=True)
            except FullBuildNeeded as why:
                reason = str(why)
                log.info("full build: %s", reason)
        result = _build(plan, incremental=False)
        return dataclasses.replace(result, full_reason=reason)


@dataclass(frozen=True)
class BuildPlan:
    """One build request, the same for its incremental attempt and the full build it may fall
    back to: the data dir (with its object store), the lake files as found under the build
    lock, and how to build."""

    layout: DataDir
    manifest: dict[str, LakeFile]
    started: float
    as_of: datetime | None
    params: ForecastParams
    export_parquet: bool
    memory_limit: str
    threads: int | None
    compact_free_share: float


#: The oldest DuckDB release that must be able to open the warehouse.
STORAGE_COMPATIBILITY = "v1.5.0"

#: A full build's file with at least this share of free blocks is compacted before it is
#: published; an incremental build's at twice it: its file keeps ~20% free blocks (what each
#: build rewrites, reused by the next one), and a compacted file would only grow back.
COMPACT_FREE_SHARE = 0.25


def free_share(con: duckdb.DuckDBPyConnection) -> float:
    """The share of the connection's database file that is free blocks (after a checkpoint)."""
    total, free = con.execute(
        "select total_blocks, free_blocks from pragma_database_size() "
        "where database_name = current_database()"
    ).fetchone() or (0, 0)
    return free / total if total else 0.0


def compact(con: duckdb.DuckDBPyConnection, target: Path) -> None:
    """Copy the connection's database into the new file `target`, without its free blocks.

    DuckDB reuses the blocks of dropped tables and deleted rows but never truncates its file
    (the trimmed observations of a full build leave most of it free), and VACUUM reclaims
    nothing: a copy (`COPY FROM DATABASE`, comments and views included) is its documented way.
    """
    database = scalar(con, "select current_database()")
    con.execute(
        f"attach {sql_string(str(target))} as compacted "
        f"(storage_version {sql_string(STORAGE_COMPATIBILITY)})"
    )
    try:
        con.execute(f'copy from database "{database}" to compacted')
    finally:
        con.execute("detach compacted")


#: zstd at level 1: a third faster to write than DuckDB's default level 3 for ~3% larger files
#: (forecast_backtest, re-exported by every build, measured at 2k volumes x 365 days)
EXPORT_COMPRESSION = "compression zstd, compression_level 1"


def export_days(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    name: str,
    column: str,
    since: date | None,
    token: str,
) -> tuple[dict[str, tuple[Path, Path]], list[Path]]:
    """Stage a day-grained table (DAY_EXPORTS) as one Parquet file per day in `folder`: the
    days from `since` on (every day in a full build) and those whose file is missing. Returns
    the staged (temporary, final) files by day, and the published files whose day the table no
    longer holds (to remove once the build is published). The files of earlier days hold the
    same rows: the rows before `since` are the previous build's."""
    days = [
        row[0]
        for row in con.execute(f'select distinct "{column}" from "{name}" order by 1').fetchall()
    ]
    published = {path.stem: path for path in folder.glob("*.parquet")} if folder.exists() else {}
    wanted = {day.isoformat() for day in days}
    stale = [path for stem, path in published.items() if stem not in wanted]
    publish.mkdir_private(folder)
    write = [
        day for day in days if since is None or day >= since or day.isoformat() not in published
    ]
    if not write:
        return {}, stale
    # one COPY split by day (a COPY per day scanned the whole table once per day: 53 s for a
    # full build of 365 days), into a scratch folder beside the files it will replace
    scratch = folder / f".{token}.partitions"
    every = len(write) == len(days)
    con.execute(
        f'copy (select * from "{name}"{"" if every else f" where list_contains($days, {column})"})'
        f" to $path (format parquet, {EXPORT_COMPRESSION}, partition_by ({column}),"
        " write_partition_columns true)",
        {"path": str(scratch), **({} if every else {"days": write})},
    )
    staged = {}
    for day in write:
        final = folder / f"{day.isoformat()}.parquet"
        temporary = folder / f".{final.name}.{token}.tmp"
        parts = sorted((scratch / f"{column}={day.isoformat()}").glob("*.parquet"))
        if len(parts) == 1:
            parts[0].rename(temporary)
        else:  # DuckDB split the day into several files: one file per day, as documented
            con.execute(
                f"copy (select * from read_parquet($parts)) to $path "
                f"(format parquet, {EXPORT_COMPRESSION})",
                {"parts": [str(part) for part in parts], "path": str(temporary)},
            )
        staged[f"{name}/{final.name}"] = (temporary, final)
    remove(scratch)
    return staged, stale


def _build(plan: BuildPlan, *, incremental: bool) -> BuildResult:
    layout, manifest, as_of, params = plan.layout, plan.manifest, plan.as_of, plan.params
    token = uuid.uuid4().hex
    published = layout.warehouse
    building = _beside(published, f"{token}.building")
    marts_dir = layout.marts
    staged: dict[str, tuple[Path, Path]] = {}
    stale_days: list[Path] = []
    since: date | None = None
    links = layout.warehouse_links / token
    try:
        timings: dict[str, float] = {}
        if incremental:
            step = time.perf_counter()
            since = first_changed_day(layout, manifest, as_of, building)
            timings["copy"] = round(time.perf_counter() - step, 3)
        spill = _beside(published, f"{token}.building.tmp")
        compacted = _beside(published, f"{token}.building.compact")
        spilled = 0
        step = time.perf_counter()
        con = duckdb.connect(
            str(building),
            config={
                # beyond the limit DuckDB spills to disk instead of failing or swapping
                "memory_limit": plan.memory_limit,
                "temp_directory": str(spill),
                # no model relies on row order; keeping it costs memory in every CTAS
                "preserve_insertion_order": False,
                # readable by DuckDB 1.5 clients too: the DuckDB CLI on PyPI (`make sql`) and
                # the DuckDB drivers BI tools bundle lag the Python package's 2.x format
                "storage_compatibility_version": STORAGE_COMPATIBILITY,
                # one thread makes what spills, and when, the same on every run (tests)
                **({"threads": plan.threads} if plan.threads else {}),
            },
        )
        try:
            os.chmod(building, publish.FILE_MODE)
            con.execute("set timezone = 'UTC'")
            con.execute("set enable_progress_bar = false")
            for schema in (STAGING_SCHEMA, BUILD_SCHEMA):
                con.execute(f"create schema if not exists {schema}")
            # models name each other unqualified
            con.execute(f"set search_path = 'main,{STAGING_SCHEMA}'")
            create_lake_view(con, layout, since or EPOCH, name="changed_lake_snapshots")
            if as_of is None:
                as_of = scalar(con, "select max(snapshot_at) from changed_lake_snapshots")
                if as_of is None:
                    if since is not None:
                        raise FullBuildNeeded(f"no lake rows from {since} on")
                    # every snapshot is valid and empty (no volumes yet): an empty warehouse
                    as_of = latest_file_instant(layout)
            as_of = as_of.astimezone(UTC)
            if since is not None and as_of.date() < since:
                raise FullBuildNeeded(f"as_of {as_of} falls before the first changed day")
            if since is not None and scalar(
                con,
                "select count(*) from changed_lake_snapshots where snapshot_at < $since",
                {"since": midnight(since)},
            ):
                # rows kept from the previous build are those before `since`: these would
                # duplicate them
                raise FullBuildNeeded(f"lake files from {since} on hold earlier snapshots")
            bindings = {
                **params.bindings(as_of, datetime.now(UTC)),
                "since": since or EPOCH,
            }
            timings["open"] = round(time.perf_counter() - step, 3)
            step = time.perf_counter()
            # before the lake view moves to this build's links: volume_snapshots reads it
            copy = read_copy(con, since)
            timings["read_copy"] = round(time.perf_counter() - step, 3)
            # what the kept rows were made as of (a full build keeps none: its own as_of)
            bindings["previous_as_of"] = copy.previous_as_of or as_of
            fingerprints = params_fingerprints(bindings)
            horizon = steps_horizon(as_of, params)
            first_day = min(entry.day for entry in manifest.values() if entry.day is not None)
            # the copy lacks the observations before previous_kept not seen since: a build that
            # reads them (a lake day rebuilt before it, an as_of moved back) must be a full one
            trimmed = copy.previous_kept
            if trimmed is not None and first_day >= trimmed.date():
                trimmed = None  # the lake starts after it: nothing was dropped
            if trimmed is not None and since is not None and since < trimmed.date():
                raise FullBuildNeeded("the lake changed before the observations kept")
            if trimmed is not None and observations_horizon(as_of, params) < trimmed:
                raise FullBuildNeeded("as_of moved back past the observations kept")
            step = time.perf_counter()
            known: dict[tuple[str, int], bool] = {}
            if since is not None:
                known = {
                    (path, inode): has_source
                    for path, inode, has_source in con.execute(
                        f"select path, inode, has_source from {MANIFEST_TABLE}"
                    ).fetchall()
                }
            has_source = files_with_source(con, layout, manifest, known)
            link_lake(con, layout, manifest, has_source, links)
            timings["lake_links"] = round(time.perf_counter() - step, 3)
            provision = Provision(con, layout, copy, horizon, bindings)
            # a full build groups the lake's snapshots into reconciliations from the horizon on
            lake_days = {entry.day for entry in manifest.values() if entry.day is not None}
            start = observations.guess_start(lake_days, as_of, params) if since is None else None
            observations_from: datetime | None = None
            rebuilt_whole: set[str] = set()
            for model in models().values():
                if since is not None and model.append:
                    step = time.perf_counter()
                    append(con, model, bindings)
                    timings[model.name] = round(time.perf_counter() - step, 3)
                    spilled = max(spilled, _spill_size(spill))
                    continue
                for source in model.sources:
                    provide = provider(source)
                    if provide is not None and source not in timings:
                        step = time.perf_counter()
                        provide(provision)
                        timings[source] = round(time.perf_counter() - step, 3)
                step = time.perf_counter()
                if since is None and model.name == observations.NAME:
                    observations_from = observations.build_full(
                        con, model, bindings, start, lake_days, run_model
                    )
                elif since is not None and model.incremental:
                    if copy.params.get(model.name) == fingerprints[model.name]:
                        replace_from(con, model, bindings, since)
                    else:  # its kept rows were made with other parameters: every day anew
                        run_model(con, model, {**bindings, "since": EPOCH})
                        rebuilt_whole.add(model.name)
                else:
                    run_model(con, model, bindings)
                timings[model.name] = round(time.perf_counter() - step, 3)
                spilled = max(spilled, _spill_size(spill))
            if since is not None:
                check_full_when(con, bindings)
            step = time.perf_counter()
            kept = kept_horizon(con, as_of, params)
            timings["kept_horizon"] = round(time.perf_counter() - step, 3)
            if trimmed is not None and kept < trimmed:
                # the backtest's origins reach further back than the copy kept (days removed)
                raise FullBuildNeeded("the backtest's origins reach before the observations kept")
            step = time.perf_counter()
            keep_observations(con, since, kept)
            timings["keep_observations"] = round(time.perf_counter() - step, 3)
            step = time.perf_counter()
            rows = {
                name: int(scalar(con, f'select count(*) from "{name}"'))
                for name, model in models().items()
                if model.materialized == "table"
            }
            # counted from its daily rollup: counting the view would read the whole history
            rows["volume_snapshots"] = int(
                scalar(con, "select coalesce(sum(snapshot_count), 0) from volume_daily")
            )
            timings["count_rows"] = round(time.perf_counter() - step, 3)
            try:
                step = time.perf_counter()
                _verify(con, rows, since)
                timings["verify"] = round(time.perf_counter() - step, 3)
            except BuildError as error:
                if since is None:
                    raise
                log.warning("incremental build failed verification (%s)", error)
                raise FullBuildNeeded(f"incremental build failed verification: {error}") from None
            write_manifest(
                con,
                manifest,
                has_source,
                as_of,
                horizon,
                since or EPOCH,
                kept,
                fingerprints,
            )
            step = time.perf_counter()
            con.execute("begin")  # one commit: one per COMMENT ON cost every build ~1 s
            undocumented = apply_comments(con, PUBLIC_TABLES)
            con.execute("commit")
            timings["comments"] = round(time.perf_counter() - step, 3)
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
            if plan.export_parquet:
                publish.mkdir_private(marts_dir)
                for name in EXPORTED_TABLES:
                    final = marts_dir / f"{name}.parquet"
                    temporary = marts_dir / f"{name}.parquet.{token}.tmp"
                    con.execute(
                        f'copy "{name}" to $path (format parquet, {EXPORT_COMPRESSION})',
                        {"path": str(temporary)},
                    )
                    staged[name] = (temporary, final)
                for name, column in DAY_EXPORTS.items():
                    changed = None if name in rebuilt_whole else since
                    days, stale = export_days(con, marts_dir / name, name, column, changed, token)
                    staged.update(days)
                    stale_days.extend(stale)
            timings["export"] = round(time.perf_counter() - step, 3)
            step = time.perf_counter()
            con.execute("checkpoint")
            timings["checkpoint"] = round(time.perf_counter() - step, 3)
            step = time.perf_counter()
            threshold = plan.compact_free_share * (1 if since is None else 2)
            if free_share(con) >= threshold:
                compact(con, compacted)
                timings["compact"] = round(time.perf_counter() - step, 3)
            spilled = max(spilled, _spill_size(spill))
        finally:
            con.close()
        if compacted.exists():
            os.replace(compacted, building)
        if spill.exists():
            remove(spill)
        remote = layout.remote
        if remote is not None:
            step = time.perf_counter()
            for temporary, final in staged.values():
                remote.put(temporary, final)
            remote.put(building, published)  # last: the warehouse is the build's commit point
            timings["upload"] = round(time.perf_counter() - step, 3)
        step = time.perf_counter()
        publish.publish(building, published)
        for temporary, final in staged.values():
            publish.publish(temporary, final)
        for retired in RETIRED_EXPORTS:
            (marts_dir / retired).unlink(missing_ok=True)
        for gone in stale_days:
            gone.unlink(missing_ok=True)
        retire_links(layout.warehouse_links, token)
        timings["publish"] = round(time.perf_counter() - step, 3)
    except BaseException:
        for leftover in layout.root.glob(f"{published.name}.{token}.building*"):
            remove(leftover)
        if links.exists():
            remove(links)
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
        seconds=time.perf_counter() - plan.started,
        parquet={
            **{name: final for name, (_, final) in staged.items() if name in EXPORTED_TABLES},
            **({name: marts_dir / name for name in DAY_EXPORTS} if plan.export_parquet else {}),
        },
        timings=timings,
        mode="incremental" if since is not None else "full",
        since=since,
        spilled_bytes=spilled,
        observations_from=observations_from,
    )
