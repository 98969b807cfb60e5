"""The replay's steps at an origin (pipelines/replay.py): sorted once per batch of origins, the
same rows as sorting the reconciliations known at each origin on their own."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb

from pipelines import replay

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


def test_steps_from_a_batch_are_the_steps_sorted_at_each_origin():
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    _observations(con)
    window = timedelta(days=3)
    origins = [START + timedelta(days=day) for day in range(4, 11)]
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
