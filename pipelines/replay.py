"""The production forecast replayed at past origins: for each day's origin (00:00 UTC), the
`quota_forecast` model's own SQL and parameters run on only what the lake knew before it.

The build engine keeps the result in `staging.volcap_replay` (forecast_backtest's `volcap`
rows): each origin is computed once and kept, so an hourly build replays only the origins
whose inputs changed (none, or today's) instead of the whole history.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from pipelines.models import Model
from pipelines.warehouse.schema import midnight

#: the engine-kept relation forecast_backtest reads (a source, in the staging schema)
REPLAY_NAME = "volcap_replay"
REPLAY_TABLE = f"staging.{REPLAY_NAME}"

_COLUMNS = """
    source varchar, volume_id varchar, resource varchar, origin timestamptz, state varchar,
    days_to_full double, days_to_full_low double, days_to_full_high double, kind varchar,
    fingerprint varchar
"""
_COLUMN_NAMES = {column.split()[0] for column in _COLUMNS.split(",")}

#: What `volumes` was at the origin: each volume in its source's last snapshot before the
#: origin (those live in the day before it: the lake's day folder prunes the read to it). Only
#: the columns the forecast reads.
_VOLUMES_AT = """
    create or replace temp table replay_volumes as
    select
        source, volume_id, used_bytes, inode_count, max_size_bytes, max_file_count,
        last_reconciled_at, true as is_active
    from staging.lake_volume_snapshots
    where snapshot_date = cast($origin as date) - 1 and snapshot_at < $origin
    qualify snapshot_at = max(snapshot_at) over (partition by source)
"""

#: The reconciliations a batch of origins read (from the first one's horizon on, first seen
#: before the last), each beside the one before it: sorted once per batch, not per origin.
_OBSERVATIONS = """
    create or replace temp table replay_observations as
    select
        source, volume_id, reconciled_at, first_seen_at, used_bytes, inode_count,
        lag(reconciled_at) over w as previous_reconciled_at,
        lag(used_bytes) over w as used_bytes_previous,
        lag(inode_count) over w as inode_count_previous,
        lag(first_seen_at) over w as previous_first_seen_at
    from volume_observations
    where reconciled_at >= $horizon and first_seen_at < $last
    window w as (partition by source, volume_id order by reconciled_at)
"""

#: Origins per batch: a batch's observations span its days and a forecast window before them
#: (memory), and are sorted once for all of them (time). In a lake shorter than that span a
#: batch takes more origins, as many as fit in the same span (`_batches`): the same rows, sorted
#: once instead of once per 7 origins.
_BATCH = 7

#: The batch's reconciliations first seen after the one before them: where the steps of an
#: origin may differ from the batch's (the few volumes `_STEPS_AT` sorts anew).
_REORDERS = """
    create or replace temp table replay_reorders as
    select source, volume_id, reconciled_at, first_seen_at, previous_first_seen_at
    from replay_observations
    where previous_first_seen_at > first_seen_at
"""

#: What `volume_observation_steps` was at the origin: the reconciliations first seen before
#: it, from a day before its forecast window, each beside the one before it (from that day on
#: too). The one before it in the batch is the one before it at the origin unless it was first
#: seen after the origin (reconciliations first seen out of order): such a volume's steps are
#: sorted anew. No CTE over the batch: the forecast reads this view more than once, each time
#: with its own filter (a drop, a volume), which a scan takes without materializing the window.
_STEPS_AT = """
    create or replace temp view replay_steps as
    with

    reordered as (
        select distinct source, volume_id from replay_reorders
        where first_seen_at < $origin and reconciled_at >= $horizon
            and previous_first_seen_at >= $origin
    )

    select
        source, volume_id, reconciled_at, used_bytes, inode_count,
        case when previous_reconciled_at >= $horizon then previous_reconciled_at end
            as previous_reconciled_at,
        case when previous_reconciled_at >= $horizon then used_bytes_previous end
            as used_bytes_previous,
        case when previous_reconciled_at >= $horizon then inode_count_previous end
            as inode_count_previous
    from replay_observations as known
    anti join reordered
        on known.source = reordered.source and known.volume_id = reordered.volume_id
    where first_seen_at < $origin and reconciled_at >= $horizon
    union all
    select
        source, volume_id, reconciled_at, used_bytes, inode_count,
        lag(reconciled_at) over w as previous_reconciled_at,
        lag(used_bytes) over w as used_bytes_previous,
        lag(inode_count) over w as inode_count_previous
    from replay_observations as known
    semi join reordered
        on known.source = reordered.source and known.volume_id = reordered.volume_id
    where first_seen_at < $origin and reconciled_at >= $horizon
    window w as (partition by source, volume_id order by reconciled_at)
"""

#: No calibration at an origin: the replay records the model's own interval, which
#: forecast_calibration then calibrates from these very replays.
_NO_CALIBRATION = """
    create or replace temp table replay_calibration (
        source varchar, calibrated_at timestamptz, horizon varchar, kind varchar,
        above_days double, up_to_days double, calibrated_from varchar, margin_low double,
        margin_high double, late_unbounded boolean
    )
"""

#: What `forecast_day_moments` was at the origin: the days first seen before it (exactly: the
#: moments are kept per day of first sighting).
_MOMENTS_AT = """
    create or replace temp view replay_moments as
    select * from forecast_day_moments where seen_day < cast($origin as date)
"""

#: the relations the forecast reads, and what stands in for them at an origin
_STAND_INS = {
    "volumes": "replay_volumes",
    "volume_observation_steps": "replay_steps",
    "forecast_day_moments": "replay_moments",
    "forecast_calibration": "replay_calibration",
}


#: The days with reconciliations first seen before as_of's day (from `$since` on, with
#: `{since}`): the instants first, as backtest_origins does (a timestamptz's day is ICU's time
#: zone conversion: made for every row, ~10x the cost of the scan)
_ORIGIN_DAYS = """
    select cast(first_seen_at as date) as day
    from (
        select first_seen_at
        from volume_observations
        where first_seen_at < cast(cast($as_of as date) as timestamptz) {since}
        group by first_seen_at
    )
    group by day
"""


def origins(
    con: duckdb.DuckDBPyConnection, as_of: datetime, max_origins: int, lookback_days: int
) -> list[datetime]:
    """The origins replayed: 00:00 UTC after each day with reconciliations first seen, up to
    as_of; the latest `max_origins` of them (backtest_origins: those the backtest scores), and
    those of the `lookback_days` days before the first (forecast_calibration's evidence for
    it)."""
    if max_origins <= 0:
        return []
    lookback = timedelta(days=lookback_days)
    # the recent days first: when they hold every origin the answer needs, the older rows are
    # not read (zone maps skip them); otherwise (a lake with gaps) the whole history
    recent = as_of.astimezone(UTC).date() - timedelta(days=max_origins + lookback_days)
    for since in (recent, None):
        sql = _ORIGIN_DAYS.format(since="and first_seen_at >= $since" if since else "")
        bound = {"as_of": as_of, **({"since": midnight(since)} if since else {})}
        days = sorted(row[0] for row in con.execute(sql, bound).fetchall())
        first = days[-max_origins] if len(days) >= max_origins else (days or [None])[0]
        if (
            since is not None
            and (first is None or len(days) < max_origins or first - lookback < since)
            and con.execute(
                "select count(*) from (select 1 from volume_observations "
                "where first_seen_at < $since limit 1)",
                {"since": midnight(since)},
            ).fetchone()
            != (0,)
        ):
            continue  # older days may hold origins: read them all
        return [midnight(day + timedelta(days=1)) for day in days if day >= first - lookback]
    return []


def _batches(
    missing: list[datetime], window: timedelta, earliest: datetime | None
) -> list[list[datetime]]:
    """The missing origins in batches, each spanning (from its forecast window's start, or the
    earliest reconciliation, to its last origin) no more than `_BATCH` consecutive origins do in
    a long lake."""
    span = window + timedelta(days=_BATCH - 1)
    batches: list[list[datetime]] = []
    for origin in missing:
        if batches:
            start = batches[-1][0] - window
            if earliest is not None:
                start = max(start, earliest)
            if origin - start <= span:
                batches[-1].append(origin)
                continue
        batches.append([origin])
    return batches


def _timestamp(instant: datetime) -> str:
    return f"timestamptz '{instant.astimezone(UTC).isoformat()}'"


def _fingerprint(model: Model, bindings: dict[str, Any]) -> str:
    """The forecast's SQL and every parameter it binds but the instant: what a kept replay
    must have been made with."""
    bound = sorted((name, repr(bindings[name])) for name in model.parameters if name != "as_of")
    return hashlib.sha256(repr((model.sql, bound)).encode()).hexdigest()


def _body(model: Model) -> str:
    body = model.sql.strip().rstrip(";")
    for relation, stand_in in _STAND_INS.items():
        body = re.sub(rf"\b(from|join)\s+{relation}\b", rf"\1 {stand_in}", body)
    return body


def _replay_at(
    con: duckdb.DuckDBPyConnection,
    origin: datetime,
    window: timedelta,
    body: str,
    bindings: dict[str, Any],
    model: Model,
    fingerprint: str,
) -> None:
    """Replay one origin of the batch whose observations `replay_observations` holds."""
    con.execute(_VOLUMES_AT, {"origin": origin})
    # a view: the forecast reads it once (views cannot take prepared parameters)
    con.execute(
        _STEPS_AT.replace("$origin", _timestamp(origin)).replace(
            "$horizon", _timestamp(origin - window)
        )
    )
    con.execute(_MOMENTS_AT.replace("$origin", _timestamp(origin)))
    at_origin = {**bindings, "as_of": origin}
    con.execute(
        f"""
        insert into {REPLAY_TABLE}
        select source, volume_id, resource, as_of as origin, state, days_to_full,
            days_to_full_low, days_to_full_high, kind, $replay_fingerprint
        from ({body})
        """,
        {
            **{name: at_origin[name] for name in model.parameters},
            "replay_fingerprint": fingerprint,
        },
    )


def replay(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    bindings: dict[str, Any],
    since: date | None,
    max_origins: int,
    lookback_days: int,
) -> int:
    """Bring the replay table up to date: drop origins outside the kept ones or whose inputs
    changed (from `since` on; all of them when None), then replay each missing origin with
    `model` (quota_forecast) bound as a build at that instant would bind it. Returns the
    number of origins replayed."""
    fingerprint = _fingerprint(model, bindings)
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from duckdb_columns() where database_name = current_database() "
            "and schema_name = 'staging' and table_name = ?",
            [REPLAY_NAME],
        ).fetchall()
    }
    # a table kept by an engine with other columns (before `kind`, say) is rebuilt whole
    if since is None or columns != _COLUMN_NAMES:
        con.execute(f"create or replace table {REPLAY_TABLE} ({_COLUMNS})")
    else:
        # replays made with other SQL or parameters are not this forecast's
        con.execute(
            f"delete from {REPLAY_TABLE} where fingerprint is distinct from $f", {"f": fingerprint}
        )
        # an origin reads the days before it: those from `since` on may have changed
        changed = midnight(since)
        con.execute(f"delete from {REPLAY_TABLE} where origin > $changed", {"changed": changed})
    wanted = origins(con, bindings["as_of"], max_origins, lookback_days)
    if wanted:
        con.execute(f"delete from {REPLAY_TABLE} where origin < $first", {"first": wanted[0]})
    kept = {
        row[0].astimezone(UTC)
        for row in con.execute(f"select distinct origin from {REPLAY_TABLE}").fetchall()
    }
    body = _body(model)
    con.execute(_NO_CALIBRATION)
    window = timedelta(days=int(bindings["window_days"]) + 1)
    missing = [origin for origin in wanted if origin not in kept]
    earliest = None
    if missing:
        row = con.execute("select min(reconciled_at) from volume_observations").fetchone()
        earliest = row[0].astimezone(UTC) if row and row[0] is not None else None
    done = 0
    for batch in _batches(missing, window, earliest):
        con.execute(_OBSERVATIONS, {"horizon": batch[0] - window, "last": batch[-1]})
        con.execute(_REORDERS)
        for origin in batch:
            _replay_at(con, origin, window, body, bindings, model, fingerprint)
            done += 1
    con.execute("drop table if exists replay_volumes")
    con.execute("drop view if exists replay_steps")
    con.execute("drop view if exists replay_moments")
    con.execute("drop table if exists replay_observations")
    con.execute("drop table if exists replay_reorders")
    con.execute("drop table if exists replay_calibration")
    return done
