"""The replay's steps at an origin (pipelines/replay.py): sorted once per batch of origins, the
same rows as sorting the reconciliations known at each origin on their own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines import replay
from pipelines.models import models

#: what `volume_observation_steps` is at an origin, sorted at that origin alone
ALONE = """
    select
        source, volume_id, reconciled_at, used_bytes, inode_count,
        lag(reconciled_at) over w as previous_reconciled_at,
        lag(used_bytes) over w as used_bytes_previous,
        lag(inode_count) over w as inode_count_previous
    from volume_observations
    where first_seen_at < $origin and reconciled_at >= $horizon
    window w as (partition by source, volume_id order by reconciled_at)
"""

START = datetime(2026, 3, 1, tzinfo=UTC)


def _observations(con: duckdb.DuckDBPyConnection) -> None:
    """Hourly reconciliations of a few volumes over 12 days; some first seen in order, some
    (a stalled reconciler catching up) first seen out of order, hours or days late."""
    rows = []
    rng = random.Random(7)
    for volume in range(6):
        for hour in range(12 * 24):
            reconciled = START + timedelta(hours=hour, minutes=-7)
            late = timedelta(minutes=10)
            if volume >= 3 and rng.random() < 0.2:  # out of order: seen after later ones
                late = timedelta(hours=rng.choice([2, 30, 60]))
            rows.append(("default", f"v{volume}", reconciled, reconciled + late, hour * 10, hour))
    con.execute(
        "create table volume_observations (source varchar, volume_id varchar, "
        "reconciled_at timestamptz, first_seen_at timestamptz, used_bytes bigint, "
        "inode_count bigint)"
    )
    con.executemany("insert into volume_observations values (?, ?, ?, ?, ?, ?)", rows)


@pytest.mark.parametrize(
    "days",
    [range(4, 11), range(1, 13)],
    ids=["seven origins past a window", "every origin of a lake shorter than a batch's span"],
)
def test_steps_from_a_batch_are_the_steps_sorted_at_each_origin(days):
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    _observations(con)
    window = timedelta(days=3)
    origins = [START + timedelta(days=day) for day in days]
    con.execute(replay._OBSERVATIONS, {"horizon": origins[0] - window, "last": origins[-1]})
    con.execute(replay._REORDERS)
    reordered = 0
    for origin in origins:
        horizon = origin - window
        con.execute(
            replay._STEPS_AT.replace("$origin", replay._timestamp(origin)).replace(
                "$horizon", replay._timestamp(horizon)
            )
        )
        alone = sorted(con.execute(ALONE, {"origin": origin, "horizon": horizon}).fetchall())
        batched = sorted(con.execute("from replay_steps").fetchall())
        assert batched == alone, origin
        reordered += con.execute(
            "select count(*) from replay_observations where first_seen_at < $o "
            "and previous_first_seen_at >= $o",
            {"o": origin},
        ).fetchone()[0]
    assert reordered > 0  # the out-of-order path was taken


def test_a_batch_spans_what_seven_origins_span_in_a_long_lake():
    """Seven daily origins per batch past the lake's first window; in a lake shorter than that
    span, every origin in one batch (their observations are the whole lake either way)."""
    window = timedelta(days=29)
    year = [START + timedelta(days=day) for day in range(300, 365)]
    batches = replay._batches(year, window, earliest=START)
    assert [len(batch) for batch in batches] == [7] * 9 + [2]
    assert [origin for batch in batches for origin in batch] == year
    month = [START + timedelta(days=day) for day in range(1, 31)]
    assert replay._batches(month, window, earliest=START) == [month]
    # an origin far from the batch's (an incremental build's today, after kept ones) starts
    # its own
    apart = [START + timedelta(days=day) for day in (1, 2, 60)]
    assert replay._batches(apart, window, earliest=START) == [apart[:2], apart[2:]]
    assert replay._batches([], window, earliest=None) == []


def _moments_known_at(con: duckdb.DuckDBPyConnection, origin: datetime) -> dict:
    """Per volume and bucket, count, mean and spread of usage combined from the cells first
    seen before `origin` (the parallel-variance formulas quota_forecast uses)."""
    cells: dict[tuple[str, object], list[tuple[int, float, float]]] = {}
    for volume, day, n, mean, ss in con.execute(
        "select volume_id, day, n, bytes_y, bytes_ss from forecast_day_moments "
        "where seen_day < cast($origin as date)",
        {"origin": origin},
    ).fetchall():
        cells.setdefault((volume, day), []).append((n, mean, ss))
    combined = {}
    for key, parts in cells.items():
        n = sum(part[0] for part in parts)
        mean = sum(part[0] * part[1] for part in parts) / n
        ss = sum(part[2] + part[0] * (part[1] - mean) ** 2 for part in parts)
        combined[key] = (n, mean, ss)
    return combined


def test_day_moments_known_before_an_origin_are_those_of_its_known_reconciliations():
    """Cells keyed by the day of first sighting: at each origin, those seen before it combine
    into exactly the moments of the reconciliations known then (out of order ones included),
    and a reconciliation at 00:00 ends the day before (a forecast's bucket ends at as_of)."""
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    _observations(con)
    con.execute(
        "insert into volume_observations values ('default', 'v0', $at, $at, 1000000000000, 1)",
        {"at": START + timedelta(days=12)},
    )
    con.execute("create table backtest_origins (origin timestamptz)")
    sql = models()["forecast_day_moments"].sql
    bindings = {
        "since": datetime(1970, 1, 1, tzinfo=UTC),
        "as_of": START + timedelta(days=12),
        "window_days": 28,
        "calibration_days": 28,
    }
    con.execute(f"create table forecast_day_moments as {sql}", bindings)
    assert con.execute(
        "select day, n from forecast_day_moments where first_reconciled_at = $at",
        {"at": START + timedelta(days=12)},
    ).fetchall() == [((START + timedelta(days=11)).date(), 1)]
    for day in range(1, 14):
        origin = START + timedelta(days=day)
        raw = {
            (volume, bucket): (n, mean, ss)
            for volume, bucket, n, mean, ss in con.execute(
                """
                select volume_id, cast(reconciled_at - interval 1 microsecond as date), count(*),
                    avg(used_bytes), regr_syy(used_bytes, epoch(reconciled_at))
                from volume_observations where first_seen_at < $origin group by all
                """,
                {"origin": origin},
            ).fetchall()
        }
        combined = _moments_known_at(con, origin)
        assert combined.keys() == raw.keys(), origin
        for key, (n, mean, ss) in raw.items():
            assert combined[key][0] == n, (origin, key)
            assert combined[key][1] == pytest.approx(mean, rel=1e-12), (origin, key)
            assert combined[key][2] == pytest.approx(ss, rel=1e-9, abs=1e-6), (origin, key)


#: replay.origins over the whole history at once (what it returned before it read the recent
#: days first)
ALL_ORIGINS = """
    with days as (
        select cast(day + 1 as timestamptz) as origin
        from (
            select cast(first_seen_at as date) as day from volume_observations
            where first_seen_at < cast(cast($as_of as date) as timestamptz) group by day
        )
    ),
    scored as (select origin from days order by origin desc limit $limit)
    select origin from days
    where origin >= (select min(origin) from scored) - to_days(cast($lookback as integer))
    order by origin
"""


@pytest.mark.parametrize(
    "days",
    [
        list(range(100)),
        list(range(10)),
        list(range(90, 100)),
        [*range(0, 40), *range(90, 100)],  # a gap: the recent days hold too few origins
        [*range(0, 60), *range(70, 100)],  # a gap within the lookback
        [0, 99],
        [],
    ],
    ids=[
        "a long lake",
        "a short lake",
        "a short recent lake",
        "a long gap",
        "a gap in the lookback",
        "two days",
        "none",
    ],
)
def test_origins_read_from_the_recent_days_are_those_of_the_whole_history(days):
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute("create table volume_observations (first_seen_at timestamptz)")
    for day in days:
        for hour in (1, 23):
            con.execute(
                "insert into volume_observations values (?)",
                [START + timedelta(days=day, hours=hour)],
            )
    as_of = START + timedelta(days=100, hours=5)
    for limit, lookback in [(35, 28), (5, 3), (1, 0)]:
        expected = [
            row[0].astimezone(UTC)
            for row in con.execute(
                ALL_ORIGINS, {"as_of": as_of, "limit": limit, "lookback": lookback}
            ).fetchall()
        ]
        assert replay.origins(con, as_of, limit, lookback) == expected, (limit, lookback)
