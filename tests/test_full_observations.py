"""A full build groups the lake's snapshots into observations from the observations horizon on
(pipelines/warehouse/observations.py): the same observations as grouping the whole lake and
keeping those the horizon keeps, a reconciliation that spans the horizon included."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from pipelines.lake import DataDir
from pipelines.warehouse import INFO_TABLE, ForecastParams, build_warehouse
from tests.lakegen import END, GIB, Volume, linear, noisy, snapshots, write_lake

#: the forecast's window and the backtest short: the trends window (31 days before as_of's day)
#: sets the horizon, so a 40-day lake's first week is read only for what spans it
SHORT = ForecastParams(window_days=1, backtest_max_origins=2, calibration_days=3)
DAYS = 40


def fleet() -> list[Volume]:
    return [
        Volume("steady", used=noisy(linear(100 * GIB, 5 * GIB), GIB, seed=1)),
        # reconciled every 5 hours: reconciliations span snapshots and midnights
        Volume("slow", used=linear(50 * GIB, 20 * GIB), reconcile_every_hours=5),
        # one reconciliation from its second day on: it spans the horizon
        Volume("stalled", used=linear(10 * GIB, 1 * GIB), stall_after_hour=30),
    ]


def whole_lake_observations(data_dir: Path) -> pl.DataFrame:
    """The lake's snapshots grouped whole into reconciliations, those the published build's
    horizon keeps (measured from it on, or seen since)."""
    lake = DataDir(data_dir).lake / "snapshot_date=*" / "*.parquet"
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        ((kept,),) = con.execute(f"select observations_horizon from {INFO_TABLE}").fetchall()
        return con.sql(
            f"""
            select source, volume_id, last_reconciled_at as reconciled_at,
                arg_min(used_bytes, snapshot_at) as used_bytes,
                arg_min(inode_count, snapshot_at) as inode_count,
                min(snapshot_at) as first_seen_at, count(*) as snapshot_count,
                max(snapshot_at) as last_seen_at
            from read_parquet('{lake}', union_by_name = true)
            where last_reconciled_at is not null
            group by all
            having reconciled_at >= $kept or last_seen_at >= $kept
            order by all
            """,
            params={"kept": kept},
        ).pl()


def kept_observations(data_dir: Path) -> pl.DataFrame:
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        return con.sql("select * from staging.volume_observations order by all").pl()


def test_a_full_build_reads_the_lake_from_the_observations_horizon(tmp_path):
    frame = snapshots(fleet(), hours=24 * DAYS, end=END)
    write_lake(tmp_path, frame, name="day.parquet")
    result = build_warehouse(tmp_path, full=True, params=SHORT)
    assert result.observations_from == datetime.combine(END.date(), time(), UTC) - timedelta(
        days=31
    )
    kept = kept_observations(tmp_path)
    assert_frame_equal(kept, whole_lake_observations(tmp_path), check_dtypes=False)
    # the stalled volume's one reconciliation: its first sighting and its count are the lake's
    stalled = kept.filter(pl.col("volume_id") == "stalled")
    assert stalled.height == 1
    assert stalled["first_seen_at"][0] < result.observations_from


def test_a_day_without_a_first_sighting_makes_a_full_build_read_the_whole_lake(tmp_path):
    """The horizon is guessed from the lake's day folders; a day folder without a reconciliation
    first seen (every volume stalled that day) may move the backtest's origins further back, so
    the build reads the whole lake instead, and still keeps the same observations."""
    frame = snapshots(fleet(), hours=24 * DAYS, end=END)
    quiet_day = (END - timedelta(days=2)).date()
    before = frame.filter(pl.col("snapshot_at") < datetime.combine(quiet_day, time(), UTC))
    last = before.filter(pl.col("snapshot_at") == pl.col("snapshot_at").max())
    # that day's snapshots repeat the evening before's reconciliations, hour after hour
    repeated = pl.concat(
        last.with_columns(
            snapshot_at=pl.lit(datetime.combine(quiet_day, time(hour), UTC)),
            observed_at=pl.lit(datetime.combine(quiet_day, time(hour), UTC)),
        )
        for hour in range(24)
    ).cast(frame.schema)
    after = frame.filter(pl.col("snapshot_at") >= datetime.combine(quiet_day, time(), UTC))
    after = after.filter(pl.col("snapshot_at").dt.date() != quiet_day)
    write_lake(tmp_path, pl.concat([before, repeated, after]), name="day.parquet")
    result = build_warehouse(tmp_path, full=True, params=SHORT)
    assert result.observations_from is None
    assert_frame_equal(
        kept_observations(tmp_path), whole_lake_observations(tmp_path), check_dtypes=False
    )
