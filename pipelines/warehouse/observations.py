"""A full build's `volume_observations` from the observations horizon on, not the whole lake.

A build keeps only the reconciliations measured from its horizon on or seen since
(`incremental.keep_observations`), and the models read nothing older (their windows, the
backtest's origins and the replay's windows before them lie within it). A full build used to
group every snapshot of the lake into reconciliations, then drop most of them: at a year of
hourly snapshots, ~4x the rows it keeps. It now groups only the snapshots from the horizon on,
and takes the earlier part of a reconciliation that spans the horizon (a volume that was not
reconciled for a while) from the lake's snapshots before it, as an incremental build takes it
from its copy (`volume_observations_before`).

The horizon depends on the backtest's origins, the days with reconciliations first seen, which
only the observations tell. It is guessed from the lake's day folders (a day with a snapshot
usually has a reconciliation first seen), then checked: if a day folder from the guess on has
no first sighting, the origins may reach further back, and the observations are built from the
whole lake as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

from pipelines.models import Model
from pipelines.warehouse.params import ForecastParams, observations_horizon
from pipelines.warehouse.schema import EPOCH, midnight

#: the model this module builds
NAME = "volume_observations"


def guess_start(days: Iterable[date], as_of: datetime, params: ForecastParams) -> datetime | None:
    """The instant a full build reads the lake from: the observations horizon as
    `incremental.kept_horizon` finds it (origins: `replay.origins`), computed as if every day
    folder before as_of's day had a reconciliation first seen, and no later than the first day
    the baselines' sums read (forecast_daily_sums). None when the lake starts after it."""
    days = sorted(set(days))
    if not days:
        return None
    start = observations_horizon(as_of, params)
    before = [day for day in days if day < as_of.date()]
    scored = before[-params.backtest_max_origins :] if params.backtest_max_origins > 0 else []
    if scored:
        # an origin is the 00:00 after its day; the replay also reads the calibration's days
        # before the first scored one, each a day before its forecast window
        first = scored[0] - timedelta(days=params.calibration_days)
        replayed = next(day for day in before if day >= first)
        start = min(
            start,
            midnight(replayed) - timedelta(days=params.window_days),
            midnight(scored[0]) - timedelta(days=max(params.window_days, 8)),
        )
    return start if start.date() > days[0] else None


#: The snapshots before the start of each reconciliation seen from the start on and measured
#: before it (a snapshot comes after the reconciliation it shows).
_SPANNING = """
    create or replace temp table spanning_snapshots as
    with spanning as (
        select distinct source, volume_id, last_reconciled_at
        from volume_snapshots
        where snapshot_at >= $start and last_reconciled_at < $start
    )
    select *
    from volume_snapshots
    semi join spanning
        on volume_snapshots.source = spanning.source
        and volume_snapshots.volume_id = spanning.volume_id
        and volume_snapshots.last_reconciled_at = spanning.last_reconciled_at
    where snapshot_at < $start and snapshot_at >= (select min(last_reconciled_at) from spanning)
"""


def _earlier_parts(con: duckdb.DuckDBPyConnection, model: Model, start: datetime) -> None:
    """Fill `volume_observations_before` with the earlier part of each reconciliation that
    spans `start`, as an incremental build's copy holds it: the model's own SQL over those
    snapshots alone (with no earlier part of their own), so a reconciliation is defined once."""
    con.execute(_SPANNING, {"start": start})
    body = re.sub(
        r"\b(from|join)\s+volume_snapshots\b", r"\1 spanning_snapshots", model.sql.strip()
    ).rstrip(";")
    con.execute(
        f"insert into volume_observations_before select * from ({body})",
        {"since": EPOCH},
    )
    con.execute("drop table spanning_snapshots")


def build_full(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    bindings: dict[str, Any],
    start: datetime | None,
    days: Iterable[date],
    run: Callable[[duckdb.DuckDBPyConnection, Model, dict[str, Any]], None],
) -> datetime | None:
    """Build `model` (volume_observations) in a full build with `run`, from `start` on when the
    lake's `days` check out; returns the start used (None: the whole lake)."""
    days = set(days)
    if start is not None:
        _earlier_parts(con, model, start)
        run(con, model, {**bindings, "since": start.date()})
        as_of_day = midnight(bindings["as_of"].date())
        # every day folder from the start on has a reconciliation first seen: then the origins
        # found from these observations are the guessed ones (the days the guess counted)
        expected = {day for day in days if start.date() <= day < as_of_day.date()}
        found = {
            row[0]
            for row in con.execute(
                """
                select distinct cast(first_seen_at as date) from (
                    select distinct first_seen_at from volume_observations
                    where first_seen_at >= $start and first_seen_at < $end
                )
                """,
                {"start": start, "end": as_of_day},
            ).fetchall()
        }
        if found == expected:
            return start
        con.execute("delete from volume_observations_before")
    run(con, model, {**bindings, "since": EPOCH})
    return None
