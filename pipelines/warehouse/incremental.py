"""Incremental builds: the first changed day, rows replaced or appended, the sources provided."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from pipelines import replay
from pipelines.lake import DataDir
from pipelines.lake_types import LAKE_DUCKDB_TYPES
from pipelines.models import COPY_OF, Model, bound_parameters, models, parameters_of
from pipelines.warehouse.errors import FullBuildNeeded
from pipelines.warehouse.lake_view import LakeFile
from pipelines.warehouse.params import ForecastParams, observations_horizon
from pipelines.warehouse.schema import (
    INFO_TABLE,
    MANIFEST_TABLE,
    STAGING_SCHEMA,
    midnight,
    qualified,
    scalar,
    schema_of,
)

#: Bump when the engine's incremental logic changes, so the next build is a full one.
ENGINE_VERSION = 7

#: Bindings that differ from build to build by design (the instant, the clock, the first day
#: rebuilt): the other parameters are fixed settings, fingerprinted by `params_fingerprint`.
_PER_BUILD = frozenset({"as_of", "built_at", "since", "previous_as_of"})


def fingerprint() -> str:
    """What the warehouse's tables depend on besides the lake: the models and the engine."""
    digest = hashlib.sha256(f"engine {ENGINE_VERSION}\n{LAKE_DUCKDB_TYPES}\n".encode())
    for model in models().values():
        digest.update(f"{model.name}\n{model.sql}\n".encode())
    return digest.hexdigest()


def params_fingerprints(bindings: dict[str, Any]) -> dict[str, str]:
    """Per incremental model, the parameters its rows depend on (`bound_parameters`) but the
    per-build ones: when a model's differs from the previous build's, its kept rows (made with
    the old values, such as the backtest's per-origin forecasts) are rebuilt whole."""
    fingerprints = {}
    for model in models().values():
        if model.incremental:
            bound = sorted(
                (name, repr(bindings[name]))
                for name in bound_parameters(model.name) - _PER_BUILD
                if name in bindings
            )
            fingerprints[model.name] = hashlib.sha256(repr(bound).encode()).hexdigest()
    return fingerprints


def first_changed_day(
    layout: DataDir, manifest: dict[str, LakeFile], as_of: datetime | None, copy_to: Path
) -> date:
    """Copy the published warehouse to `copy_to` and return the first day to rebuild in it.

    That day is the earliest of: a day whose lake files differ from the previous build's
    manifest (added, removed, replaced, compacted), the previous build's as_of day (its rows
    stop at that instant), and the requested as_of's day. The published file is attached
    read-only during the copy: the shared lock keeps a writer out, so the copy is consistent.
    """
    published = layout.warehouse
    if not published.exists():
        raise FullBuildNeeded("no published warehouse")
    if published.with_name(published.name + ".wal").exists():
        raise FullBuildNeeded("the published warehouse has a write-ahead log")
    if any(entry.day is None for entry in manifest.values()):
        raise FullBuildNeeded("a lake file lies outside a snapshot_date=YYYY-MM-DD folder")
    scratch = duckdb.connect()
    try:
        try:
            scratch.execute("attach ? as previous (read_only)", [str(published)])
        except duckdb.Error as error:
            raise FullBuildNeeded(f"cannot attach the published warehouse: {error}") from None
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
            raise FullBuildNeeded("the published warehouse lacks a table (older engine)")
        try:
            info = scratch.execute(
                f"select fingerprint, as_of from previous.{INFO_TABLE}"
            ).fetchall()
            if len(info) != 1 or info[0][0] != fingerprint():
                raise FullBuildNeeded("the models or the engine changed since the last build")
            previous_as_of: datetime = info[0][1]
            previous = {
                path: LakeFile(day, size, mtime_ns, inode)
                for path, day, size, mtime_ns, inode in scratch.execute(
                    f"select path, day, size, mtime_ns, inode from previous.{MANIFEST_TABLE}"
                ).fetchall()
            }
        except duckdb.Error as error:
            raise FullBuildNeeded(f"unreadable build manifest: {error}") from None
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
            raise FullBuildNeeded(f"the lake changed from its first day ({since}) on")
        shutil.copyfile(published, copy_to)
        return since
    finally:
        scratch.close()


def write_manifest(
    con: duckdb.DuckDBPyConnection,
    manifest: dict[str, LakeFile],
    has_source: dict[str, bool],
    as_of: datetime,
    horizon: datetime,
    since: date,
    kept: datetime,
    params: dict[str, str],
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
        "$since as since, $kept as observations_horizon, "
        "map($models, $fingerprints) as params_fingerprints",
        {
            "models": sorted(params),
            "fingerprints": [params[name] for name in sorted(params)],
            "fingerprint": fingerprint(),
            "as_of": as_of,
            "horizon": horizon,
            "since": since,
            "kept": kept,
        },
    )


def prepare_observations_before(
    con: duckdb.DuckDBPyConnection,
    since: date | None,
    replaced: str | None,
    previous_kept: datetime | None = None,
) -> None:
    """Fill the source `volume_observations_before`: for each reconciliation first seen before
    `since` and seen again on or after it (before or after this build), its first sighting, the
    number of its snapshots before `since` and the last of them. Empty in a full build (`since`
    None).

    `replaced` names a table of the (source, volume_id, reconciled_at) keys of the snapshot rows
    this build removed, with their counts, taken before volume_snapshots was rebuilt. The copy
    keeps the reconciliations from `previous_kept` on or seen since (`keep_observations`): one
    from before it that is not there may have been dropped, so the build cannot vouch for it.
    """
    con.execute(
        """
        create or replace temp table volume_observations_before (
            source varchar, volume_id varchar, reconciled_at timestamptz, used_bytes bigint,
            inode_count bigint, first_seen_at timestamptz, snapshot_count bigint,
            last_seen_at timestamptz
        )
        """
    )
    if since is None or replaced is None:
        return
    since_at = midnight(since)
    con.execute(
        f"""
        create or replace temp table touched_observations as
        with
        touched as (
            select source, volume_id, reconciled_at, n, false as seen from {replaced}
            union all
            select distinct source, volume_id, last_reconciled_at, 0, true from volume_snapshots
            where snapshot_at >= $since and last_reconciled_at is not null
        )
        select source, volume_id, reconciled_at, sum(n) as n, bool_or(seen) as seen_again
        from touched
        group by source, volume_id, reconciled_at
        """,
        {"since": since_at},
    )
    if previous_kept is not None and scalar(
        con,
        """
        select count(*) from touched_observations
        anti join volume_observations using (source, volume_id, reconciled_at)
        where touched_observations.reconciled_at < $kept
        """,
        {"kept": previous_kept},
    ):
        raise FullBuildNeeded("a reconciliation seen again is older than the observations kept")
    con.execute(
        """
        insert into volume_observations_before
        select
            observations.source, observations.volume_id, observations.reconciled_at,
            observations.used_bytes,
            observations.inode_count, observations.first_seen_at,
            observations.snapshot_count - removed.n, observations.last_seen_at
        from volume_observations as observations
        inner join touched_observations as removed
            on observations.source = removed.source
            and observations.volume_id = removed.volume_id
            and observations.reconciled_at = removed.reconciled_at
        where observations.first_seen_at < $since
            and observations.reconciled_at >= (select min(reconciled_at) from touched_observations)
        """,
        {"since": since_at},
    )
    # last seen from `since` on, and not any more (those snapshots left the lake): last seen at
    # its latest snapshot before `since`, which only the lake knows (rare: read only then)
    lost = """
        select earlier.source, earlier.volume_id, earlier.reconciled_at, earlier.first_seen_at
        from volume_observations_before as earlier
        semi join touched_observations as touched
            on earlier.source = touched.source
            and earlier.volume_id = touched.volume_id
            and earlier.reconciled_at = touched.reconciled_at
            and not touched.seen_again
        where earlier.last_seen_at >= $since
    """
    if scalar(con, f"select count(*) from ({lost})", {"since": since_at}):
        con.execute(
            f"""
            update volume_observations_before as earlier
            set last_seen_at = lake.last_seen_at
            from (
                select source, volume_id, last_reconciled_at as reconciled_at,
                    max(snapshot_at) as last_seen_at
                from volume_snapshots
                where snapshot_at < $since
                    and snapshot_at >= (select min(first_seen_at) from ({lost}))
                    and (source, volume_id, last_reconciled_at) in (
                        select (source, volume_id, reconciled_at) from ({lost})
                    )
                group by all
            ) as lake
            where earlier.source = lake.source
                and earlier.volume_id = lake.volume_id
                and earlier.reconciled_at = lake.reconciled_at
            """,
            {"since": since_at},
        )


def kept_horizon(
    con: duckdb.DuckDBPyConnection, as_of: datetime, params: ForecastParams
) -> datetime:
    """The first instant `keep_observations` keeps, read once the models have run: the windows'
    horizon (`observations_horizon`), or earlier if the backtest's oldest origin needs it —
    the replay reads a day before the forecast window before each origin. The origins are the
    latest days with reconciliations first seen, and the calibration's days before the first:
    every one from the horizon on survives the trimming, so a build from the trimmed copy
    finds the same origins as a full build."""
    kept = observations_horizon(as_of, params)
    origins = replay.origins(con, as_of, params.backtest_max_origins, params.calibration_days)
    if origins:
        kept = min(kept, origins[0] - timedelta(days=params.window_days + 1))
    return kept


def keep_observations(con: duckdb.DuckDBPyConnection, since: date | None, kept: datetime) -> None:
    """Drop from `staging.volume_observations` what no later build reads: the reconciliations
    measured before `kept` and not seen since (`observations_horizon`). What the models read
    of it lies within their windows; what an incremental build merges is a reconciliation seen
    again, last seen within the window unless its volume was gone for longer (then
    `prepare_observations_before` asks for a full build). A full build and an incremental one
    drop the same rows."""
    keep = "reconciled_at >= $kept or last_seen_at >= $kept"
    table = f"{STAGING_SCHEMA}.volume_observations"
    dropped, total = con.execute(
        f"select count(*) filter (where not ({keep})), count(*) from {table}", {"kept": kept}
    ).fetchone() or (0, 0)
    if not dropped:  # a lake shorter than the horizon: rewriting the table would free its blocks
        return
    if since is None and 2 * dropped > total:
        # most of the table goes: writing what stays beats deleting the rest
        con.execute(
            f"create table {table}_kept as select * from {table} where {keep}", {"kept": kept}
        )
        con.execute(f"drop table {table}")
        con.execute(f"alter table {table}_kept rename to volume_observations")
        return
    con.execute(f"delete from {table} where not ({keep})", {"kept": kept})


#: Kept by the engine beside volume_observations (see `update_observation_steps`).
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


def update_observation_steps(
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
    exists = scalar(
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
    since_at = midnight(since)
    touched_after = scalar(
        con,
        "select least("
        "(select min(reconciled_at) from volume_observations where first_seen_at >= $since), "
        "(select min(reconciled_at) from volume_observations_before))",
        {"since": since_at},
    )
    start = min(t for t in (since_at, touched_before, touched_after) if t is not None)
    con.execute(f"delete from {STEPS_TABLE} where reconciled_at >= $start", {"start": start})
    last = """
        select source, volume_id, max(reconciled_at) as reconciled_at,
            arg_max(used_bytes, reconciled_at) as used_bytes,
            arg_max(inode_count, reconciled_at) as inode_count, true as seed
    """
    # each volume's last kept row, most often within a day before `start`: only the volumes
    # with rows from `start` on and none in that day are looked for in the whole table (the
    # table's aggregation was most of this step)
    seeds = f"""
        with
        recent as (
            {last} from {STEPS_TABLE} where reconciled_at >= $start - interval 1 day
            group by source, volume_id
        ),
        missing as (
            select distinct source, volume_id from volume_observations as observations
            where reconciled_at >= $start
                and not exists (
                    from recent
                    where recent.source = observations.source
                        and recent.volume_id = observations.volume_id
                )
        ),
        older as (
            {last} from {STEPS_TABLE} as steps
            semi join missing
                on steps.source = missing.source and steps.volume_id = missing.volume_id
            group by steps.source, steps.volume_id
        )
        select * from recent
        union all
        select * from older
    """
    body = _STEPS.format(
        rows=f"{rows} from volume_observations where reconciled_at >= $start "
        f"union all select * from ({seeds})"
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


def append(con: duckdb.DuckDBPyConnection, model: Model, bindings: dict[str, Any]) -> None:
    """An incremental build's rows of an append model (`-- incremental: append`, rows keyed by
    the build's `as_of`): its copy of the published table, less the rows the model drops (this
    as_of's, and the older builds that are not the last of their UTC day), plus the model's
    rows for this build — computed with `previous_<name>` empty, without re-reading every
    earlier build's rows (the table grows with the builds kept)."""
    table = qualified(model.name)
    con.execute(f"delete from {table} where as_of = $as_of", {"as_of": bindings["as_of"]})
    con.execute(
        f"""
        delete from {table}
        where as_of < $as_of - to_days(cast($history_every_build_days as integer))
            and as_of not in (select max(as_of) from {table} group by cast(as_of as date))
        """,
        {
            "as_of": bindings["as_of"],
            "history_every_build_days": bindings["history_every_build_days"],
        },
    )
    con.execute(
        f"create or replace temp table previous_{model.name} as select * from {table} limit 0"
    )
    body = model.sql.strip().rstrip(";")
    con.execute(
        f"insert into {table} by name\n{body}",
        {name: bindings[name] for name in model.parameters},
    )


def replace_from(
    con: duckdb.DuckDBPyConnection, model: Model, bindings: dict[str, Any], since: date
) -> None:
    """Delete a day-grained model's rows from `since` on and insert the model's rows for them."""
    column = model.incremental
    kind = scalar(
        con,
        "select data_type from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? and table_name = ? and column_name = ?",
        [schema_of(model.name), model.name, column],
    )
    if kind is None:
        raise FullBuildNeeded(f"{model.name} has no column {column}")
    bound: date | datetime = since
    if kind.startswith("TIMESTAMP"):
        bound = datetime(since.year, since.month, since.day, tzinfo=UTC)
    after = ">" if model.incremental_after else ">="
    con.execute(f'delete from "{model.name}" where "{column}" {after} $since', {"since": bound})
    if model.keeps:
        con.execute(
            f'delete from "{model.name}" where not ({model.keeps})',
            {name: bindings[name] for name in parameters_of(model.keeps)},
        )
    if model.updates:
        column, expression = model.updates
        con.execute(
            f'update "{model.name}" set "{column}" = {expression}',
            {name: bindings[name] for name in parameters_of(expression)},
        )
    if model.also_replaces:
        key = ", ".join(model.grain)
        con.execute(
            f'delete from "{model.name}" where ({key}) in '
            f"(select ({key}) from {model.also_replaces})"
        )
    body = model.sql.strip().rstrip(";")
    con.execute(
        f'insert into "{model.name}" by name\n{body}',
        {name: bindings[name] for name in model.parameters},
    )


def load_previous(con: duckdb.DuckDBPyConnection, layout: DataDir, name: str) -> None:
    """Copy the published warehouse's table `name` into `previous_<name>` (what an append
    model reads of its earlier rows in a full build; empty without a published one).

    The published file is attached read-only; if a process holds it open read-write (a DuckDB
    CLI without -readonly) the lock refuses the attach, so the Parquet export is used instead.
    """
    published = layout.warehouse
    exported = layout.marts / f"{name}.parquet"
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
                    "where database_name = 'previous_warehouse' and table_name = ?",
                    [name],
                ).fetchone()
                if found and found[0]:
                    con.execute(
                        f"create or replace temp table previous_{name} as "
                        f'select * from previous_warehouse."{name}"'
                    )
                    loaded = True
            finally:
                con.execute("detach previous_warehouse")
    if not loaded and exported.exists():
        con.execute(
            f"create or replace temp table previous_{name} as select * from read_parquet(?)",
            [str(exported)],
        )
        loaded = True
    if not loaded:
        con.execute(f"create or replace temp table previous_{name} (as_of timestamptz)")


@dataclass(frozen=True)
class Copy:
    """What a build reads of the warehouse it starts from before any model replaces a row: in
    an incremental build its copy of the published one; nothing in a full build."""

    since: date | None = None
    #: a temp table of the (source, volume_id, reconciled_at) keys of the volume_snapshots rows
    #: from `since` on, with their counts
    replaced: str | None = None
    #: the earliest reconciliation first seen from `since` on
    touched_before: datetime | None = None
    #: the as_of of the build the copy was published by (the rows it keeps were made as of it)
    previous_as_of: datetime | None = None
    #: the horizon volume_observation_steps was kept from
    previous_horizon: datetime | None = None
    #: the horizon volume_observations was kept from (`keep_observations`)
    previous_kept: datetime | None = None
    #: the previous build's parameter fingerprints per incremental model (`params_fingerprints`)
    params: dict[str, str] = field(default_factory=dict)


def read_copy(con: duckdb.DuckDBPyConnection, since: date | None) -> Copy:
    """What the sources below need of the copy, read before the models replace its rows."""
    if since is None:
        return Copy()
    since_at = midnight(since)
    # what the models' `incremental full when:` conditions compare with this build's tables
    for name in sorted(
        {
            copied
            for model in models().values()
            for condition, _ in model.full_when
            for copied in COPY_OF.findall(condition)
        }
    ):
        con.execute(f"create temp table copy_of_{name} as select * from {qualified(name)}")
    replaced = "replaced_observation_keys"
    con.execute(
        f"""
        create temp table {replaced} as
        select source, volume_id, last_reconciled_at as reconciled_at, count(*) as n
        from volume_snapshots
        where snapshot_at >= $since and last_reconciled_at is not null
        group by all
        """,
        {"since": since_at},
    )
    return Copy(
        since=since,
        replaced=replaced,
        touched_before=scalar(
            con,
            "select min(reconciled_at) from volume_observations where first_seen_at >= $since",
            {"since": since_at},
        ),
        previous_as_of=scalar(con, f"select as_of from {INFO_TABLE}"),
        previous_horizon=scalar(con, f"select steps_horizon from {INFO_TABLE}"),
        previous_kept=scalar(con, f"select observations_horizon from {INFO_TABLE}"),
        params=dict(
            con.execute(
                f"select unnest(map_keys(params_fingerprints)), "
                f"unnest(map_values(params_fingerprints)) from {INFO_TABLE}"
            ).fetchall()
        ),
    )


def check_full_when(con: duckdb.DuckDBPyConnection, bindings: dict[str, Any]) -> None:
    """Ask for a full build when a model's `incremental full when:` condition holds once the
    models have run (pipelines/models.py): a change its kept rows cannot follow."""
    for model in models().values():
        for condition, reason in model.full_when:
            if scalar(
                con,
                f"select coalesce(({condition}), false)",
                {name: bindings[name] for name in parameters_of(condition)},
            ):
                raise FullBuildNeeded(reason)


@dataclass(frozen=True)
class Provision:
    """What the engine hands a source's provider: the build's connection and state."""

    con: duckdb.DuckDBPyConnection
    layout: DataDir
    copy: Copy
    horizon: datetime
    #: the build's model parameters (as_of, thresholds)
    bindings: dict[str, Any]


def _observations_before(p: Provision) -> None:
    prepare_observations_before(p.con, p.copy.since, p.copy.replaced, p.copy.previous_kept)


def _observation_steps(p: Provision) -> None:
    update_observation_steps(
        p.con, p.copy.since, p.copy.touched_before, p.horizon, p.copy.previous_horizon
    )


def _volcap_replay(p: Provision) -> None:
    replay.replay(
        p.con,
        models()["quota_forecast"],
        p.bindings,
        p.copy.since,
        int(p.bindings["backtest_max_origins"]),
        int(p.bindings["calibration_days"]),
    )


def provider(source: str) -> Callable[[Provision], None] | None:
    """How the engine fills `source` (one of `models.SOURCES`) before the first model whose
    SQL runs reads it; None for the lake view, declared before any model runs."""
    if source == "volume_observations_before":
        return _observations_before
    if source == STEPS_NAME:
        return _observation_steps
    if source == "volcap_replay":
        return _volcap_replay
    if source.startswith("previous_"):
        name = source.removeprefix("previous_")
        return lambda p: load_previous(p.con, p.layout, name)
    return None
