"""Incremental builds: after any change to the lake, the same tables as a full build of it.

Every scenario runs on two data dirs fed the same lake operations: one builds incrementally
(the default), its twin with `full=True`. After each build every public table (and the staging
observations) must hold the same rows; only quota_forecast_history's built_at may differ.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from bench.build import generate
from pipelines.assets.marts import MART_ASSETS
from pipelines.compaction import compact_day
from pipelines.lake import DataDir
from pipelines.models import models
from pipelines.replay import REPLAY_NAME
from pipelines.resources import WarehouseResource
from pipelines.warehouse import (
    INFO_TABLE,
    STEPS_NAME,
    BuildResult,
    ForecastParams,
    build_warehouse,
    qualified,
)
from tests.lakegen import END, GIB, Volume, linear, noisy, snapshots, weekly, write_lake

HOURS = 24 * 4  # four days ending at END (12:00)
START = END - timedelta(hours=HOURS - 1)
#: every model (the public tables and the staging ones) and what the engine keeps
TABLES = (*models(), STEPS_NAME, REPLAY_NAME)


def fleet() -> list[Volume]:
    """Volumes that cross day boundaries in every way a day-grained rebuild could get wrong."""
    return [
        Volume("steady", used=noisy(linear(100 * GIB, 5 * GIB), GIB, seed=1)),
        Volume("cyclic", used=weekly(300 * GIB, 80 * GIB, 2 * GIB), max_size_bytes=None),
        # one reconciliation spans several snapshots, and midnight
        Volume("slow", used=linear(50 * GIB, 20 * GIB), reconcile_every_hours=5),
        # reconciliation stops: one observation seen for days
        Volume("stalled", used=linear(10 * GIB, 1 * GIB), stall_after_hour=30),
        # limits change: quota events on either side of a rebuilt day's start
        Volume(
            "resized",
            max_size_bytes=lambda day: 200 * GIB if day < 2.5 else 400 * GIB,
            max_mounts=lambda day: None if 1 < day < 3 else 8,
        ),
        Volume("deleted", last_hour=50),
        Volume("new", first_hour=60, unreconciled_hours=3),
    ]


def frame_until(hours: int) -> pl.DataFrame:
    """The fleet's snapshots from START for `hours` hours."""
    return snapshots(fleet(), hours=hours, end=START + timedelta(hours=hours - 1))


def at(instant: datetime) -> pl.DataFrame:
    frame = frame_until(HOURS + 24)
    return frame.filter(pl.col("snapshot_at") == instant)


def table(data_dir: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        frame = con.sql(f"select * from {qualified(name)}").pl()
    if name == "quota_forecast_history":
        frame = frame.drop("built_at")
    if "full_at" in frame.columns:
        # computed from a float number of days: compared as one
        frame = frame.with_columns(pl.col("full_at").dt.epoch("us").cast(pl.Float64))
    floats = [c for c, kind in frame.schema.items() if kind == pl.Float64]
    exact = [c for c in frame.columns if c not in floats]
    return frame.sort([*exact, *floats], nulls_last=True)


def assert_same_rows(name: str, left: pl.DataFrame, right: pl.DataFrame) -> None:
    """Equal rows; floats within 1e-6 of their column's scale, because parallel aggregation
    is not bit-identical even between two full builds (a zero slope comes out as ±0.015)."""
    assert left.schema == right.schema, name
    assert left.height == right.height, name
    floats = [c for c, kind in left.schema.items() if kind == pl.Float64]
    assert_frame_equal(left.drop(floats), right.drop(floats)), name
    for column in floats:
        a, b = left[column], right[column]
        assert (a.is_null() == b.is_null()).all(), (name, column)
        scale = max(abs(a.max() or 0.0), abs(a.min() or 0.0), 1.0)
        worst = (a - b).abs().max() or 0.0
        assert worst <= 1e-6 * scale, (name, column, worst, scale)


class Twins:
    """Two data dirs given the same lake operations; `build` builds both and compares them."""

    def __init__(self, tmp_path: Path) -> None:
        self.incremental = tmp_path / "incremental"
        self.full = tmp_path / "full"
        self.incremental.mkdir()
        self.full.mkdir()

    def each(self) -> tuple[Path, Path]:
        return self.incremental, self.full

    def write(self, frame: pl.DataFrame, *, name: str | None = None) -> None:
        for data_dir in self.each():
            write_lake(data_dir, frame, name=name)

    def delete_snapshot(self, instant: datetime) -> None:
        """Remove the hourly file of the snapshot at `instant` from both lakes."""
        for data_dir in self.each():
            folder = data_dir / "lake" / "volume_snapshots" / f"snapshot_date={instant:%Y-%m-%d}"
            (folder / f"{instant:%Y%m%dT%H%MZ}.parquet").unlink()

    def build(self, **kwargs: object) -> BuildResult:
        result = build_warehouse(self.incremental, **kwargs)  # type: ignore[arg-type]
        build_warehouse(self.full, full=True, **kwargs)  # type: ignore[arg-type]
        for name in TABLES:
            assert_same_rows(name, table(self.incremental, name), table(self.full, name))
        return result


@pytest.fixture
def twins(tmp_path) -> Twins:
    twins = Twins(tmp_path)
    twins.write(frame_until(HOURS))
    first = twins.build()
    assert first.mode == "full"
    assert first.full_reason == "no published warehouse"
    return twins


@pytest.mark.parametrize(
    "extra_hours",
    [1, 12, 13],
    ids=["same-day", "last-hour-of-the-day", "first-snapshot-of-a-new-day"],
)
def test_new_snapshots_rebuild_from_the_last_built_day(twins, extra_hours):
    for hour in range(extra_hours):
        twins.write(at(END + timedelta(hours=hour + 1)))
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", END.date())


def test_a_rebuild_with_nothing_new_is_incremental_and_changes_nothing(twins):
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", END.date())


def test_a_rerun_of_an_earlier_partition_rebuilds_from_its_day(twins):
    instant = START + timedelta(hours=30)  # the second day
    rerun = at(instant).with_columns(
        pl.col("used_bytes") + 3 * GIB,
        pl.col("observed_at") + pl.duration(minutes=1),
        last_reconciled_at=pl.col("snapshot_at") - pl.duration(minutes=1),
    )
    twins.write(rerun)
    twins.write(at(END + timedelta(hours=1)))
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", instant.date())


def test_a_late_partition_rebuilds_from_its_day(tmp_path):
    twins = Twins(tmp_path)
    missing = START + timedelta(hours=40)
    frame = frame_until(HOURS)
    twins.write(frame.filter(pl.col("snapshot_at") != missing))
    twins.build()
    twins.write(frame.filter(pl.col("snapshot_at") == missing))
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", missing.date())


def test_a_compacted_day_rebuilds_from_that_day(twins):
    day = (START + timedelta(days=2)).date()
    for data_dir in twins.each():
        assert compact_day(DataDir.at(data_dir), day) is not None
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", day)


def test_an_hourly_file_beside_its_compacted_day_is_deduplicated(twins):
    day = (START + timedelta(days=1)).date()
    for data_dir in twins.each():
        compact_day(DataDir.at(data_dir), day)
    twins.build()
    late = START + timedelta(hours=30)  # in the compacted day
    twins.write(at(late).with_columns(pl.col("observed_at") + pl.duration(minutes=9)))
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", day)


def test_a_deleted_partition_rebuilds_from_its_day(twins):
    gone = START + timedelta(hours=70)
    twins.delete_snapshot(gone)
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", gone.date())


def test_an_earlier_as_of_rebuilds_from_its_day_and_a_later_one_catches_up(twins):
    earlier = END - timedelta(hours=20)
    result = twins.build(as_of=earlier)
    assert (result.mode, result.since) == ("incremental", earlier.date())
    result = twins.build()
    assert (result.mode, result.since) == ("incremental", earlier.date())


def test_a_change_on_the_first_day_falls_back_to_a_full_build(twins):
    twins.write(at(START).with_columns(pl.col("used_bytes") + 1))
    result = twins.build()
    assert result.mode == "full"
    assert "first day" in result.full_reason


def test_a_deleted_warehouse_falls_back_to_a_full_build(twins):
    twins.write(at(END + timedelta(hours=1)))
    for data_dir in twins.each():
        DataDir(data_dir).warehouse.unlink()
        shutil.rmtree(data_dir / "marts")
    result = twins.build()
    assert (result.mode, result.full_reason) == ("full", "no published warehouse")


def test_a_warehouse_from_other_models_falls_back_to_a_full_build(twins):
    with duckdb.connect(str(DataDir(twins.incremental).warehouse)) as con:
        con.execute(f"update {INFO_TABLE} set fingerprint = 'older models'")
    result = twins.build()
    assert result.mode == "full"
    assert "models or the engine changed" in result.full_reason


def test_full_is_honoured(twins):
    result = build_warehouse(twins.incremental, full=True)
    assert (result.mode, result.full_reason) == ("full", "asked for a full build")


def test_the_build_asset_takes_full_from_run_config(twins):
    def build(full: bool) -> str:
        result = dg.materialize(
            MART_ASSETS,
            resources={"warehouse": WarehouseResource(data_dir=str(twins.incremental))},
            run_config={"ops": {"warehouse_models": {"config": {"full": full}}}},
        )
        assert result.success
        [event] = result.asset_materializations_for_node("warehouse_models")[:1]
        return str(event.metadata["build_mode"].value)

    assert (build(True), build(False)) == ("full", "incremental")


def test_a_file_holding_snapshots_of_an_earlier_day_falls_back_to_a_full_build(twins):
    instant = START + timedelta(hours=30)
    stray = snapshots([Volume("stray")], hours=1, end=instant)
    for data_dir in twins.each():
        folder = data_dir / "lake" / "volume_snapshots" / f"snapshot_date={END:%Y-%m-%d}"
        stray.write_parquet(folder / "stray.parquet")
    result = twins.build()
    assert result.mode == "full"
    assert "hold earlier snapshots" in result.full_reason


def test_the_forecast_steps_follow_a_moving_window_and_a_wider_one(tmp_path):
    twins = Twins(tmp_path)
    narrow = ForecastParams(window_days=1)  # the kept steps start two days before as_of
    twins.write(frame_until(HOURS))
    twins.build(params=narrow)
    for hour in (1, 7, 13, 19):  # across midnight: the horizon moves on a day
        twins.write(at(END + timedelta(hours=hour)))
        result = twins.build(params=narrow)
        assert result.mode == "incremental"
    result = twins.build()  # the default window reaches further back: steps are recomputed
    assert result.mode == "incremental"


def test_a_build_past_its_memory_limit_spills_and_gives_the_same_tables(tmp_path):
    # 3,000 volumes x 10 days (720k snapshot rows), a one-day forecast window and one thread:
    # at 64 MB the day-grained models spill (at 32 MB the build runs out of memory), with 2 GB
    # nothing does
    twins = Twins(tmp_path)
    for data_dir in twins.each():
        generate(data_dir, 3_000, 10)
    params = ForecastParams(window_days=1)
    limited = build_warehouse(
        twins.incremental, full=True, params=params, memory_limit="64MB", threads=1
    )
    unlimited = build_warehouse(twins.full, full=True, params=params, memory_limit="2GB")
    assert limited.spilled_bytes > 0
    assert unlimited.spilled_bytes == 0
    for name in TABLES:
        assert_same_rows(name, table(twins.incremental, name), table(twins.full, name))


#: the backtest's origins and the forecast's window short, so the observations kept start at the
#: 30-day trends window (31 days before as_of's day) and a 40-day lake drops its first week
SHORT = ForecastParams(window_days=1, backtest_max_origins=2)


def kept_observations(data_dir: Path) -> tuple[datetime, int, int]:
    """The published warehouse's observations horizon, its observations, and those before the
    horizon that are not seen since (trimming keeps none)."""
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        (kept,) = con.execute(f"select observations_horizon from {INFO_TABLE}").fetchone()
        count, stale = con.execute(
            "select count(*), count(*) filter (where reconciled_at < $kept "
            "and last_seen_at < $kept) from staging.volume_observations",
            {"kept": kept},
        ).fetchone()
    return kept, count, stale


def test_observations_outside_every_window_leave_both_builds_alike(tmp_path):
    """Past a day before the longest window a model reads (31 days before as_of's day),
    volume_observations keeps only the reconciliations seen since: the same rows whether built
    incrementally or in full, as the horizon moves on a day and as a rerun removes sightings."""
    twins = Twins(tmp_path)
    days = 40
    end = END + timedelta(hours=13)  # 01:00 on the day after END
    frame = snapshots(fleet(), hours=24 * days + 13, end=end)
    old = frame.filter(pl.col("snapshot_at") <= END - timedelta(hours=12))
    twins.write(old, name="day.parquet")  # compacted days
    twins.write(frame.filter(pl.col("snapshot_at").is_between(END - timedelta(hours=11), END)))
    twins.build(params=SHORT)
    kept, before, stale = kept_observations(twins.incremental)
    assert kept == datetime.combine(END.date(), time(), UTC) - timedelta(days=31)
    assert stale == 0
    # hourly reconciliations: the first nine days of them are gone (the stalled volume's stays)
    built = frame.filter(pl.col("snapshot_at") <= END, pl.col("last_reconciled_at").is_not_null())
    assert before < 0.85 * built.select("source", "volume_id", "last_reconciled_at").n_unique()
    twins.write(frame.filter(pl.col("snapshot_at") > END))  # across midnight
    result = twins.build(params=SHORT)
    assert (result.mode, result.since) == ("incremental", END.date())
    assert result.timings["keep_observations"] >= 0
    kept_after, _, stale = kept_observations(twins.incremental)
    assert (kept_after, stale) == (kept + timedelta(days=1), 0)
    # a rerun of the new day's snapshots without the stalled volume: its reconciliation, first
    # seen weeks ago, was last seen the evening before
    midnight = datetime.combine(end.date(), time(), UTC)
    for data_dir in twins.each():  # ingest replaces a file by a new one (a rename)
        for file in (data_dir / "lake" / "volume_snapshots").glob(f"snapshot_date={end.date()}/*"):
            file.unlink()
    twins.write(frame.filter(pl.col("snapshot_at") >= midnight, pl.col("volume_id") != "stalled"))
    result = twins.build(params=SHORT)
    assert (result.mode, result.since) == ("incremental", end.date())
    with duckdb.connect(str(DataDir(twins.incremental).warehouse), read_only=True) as con:
        first_seen, last_seen = con.execute(
            "select min(first_seen_at) filter (where volume_id = 'stalled'), "
            "max(last_seen_at) filter (where volume_id = 'stalled') "
            "from staging.volume_observations"
        ).fetchone()
    assert first_seen < END - timedelta(days=30)  # the stalled volume's one reconciliation
    assert last_seen == midnight - timedelta(hours=1)

    # a day before the horizon leaves the lake: its observations left the copy, so a full build
    second_day = sorted((twins.incremental / "lake" / "volume_snapshots").iterdir())[1]
    for data_dir in twins.each():
        shutil.rmtree(data_dir / "lake" / "volume_snapshots" / second_day.name)
    result = twins.build(params=SHORT)
    assert (result.mode, result.full_reason) == (
        "full",
        "the lake changed before the observations kept",
    )


def test_origins_leave_the_backtest_window_and_a_later_fill_scores_kept_origins(tmp_path):
    """The backtest scores the latest backtest_max_origins origins (the replay also keeps the
    calibration_days before them): an hourly build computes only the new day's origin, a fill
    that comes later is scored on the forecasts kept from earlier builds, and the origin that
    left the window is dropped, as a full build leaves it out."""
    twins = Twins(tmp_path)
    params = ForecastParams(backtest_max_origins=2, calibration_days=1)
    end = END + timedelta(hours=13)  # 01:00 on the day after END
    hours = 6 * 24
    # reaches its 1000 GiB quota 136.2 hours after the lake's start: END + 7h
    filler = Volume("filler", used=linear(773 * GIB, 40 * GIB), reconcile_every_hours=1)
    frame = snapshots([*fleet(), filler], hours=hours, end=end)
    twins.write(frame.filter(pl.col("snapshot_at") <= END))
    twins.build(params=params)

    def scored(data_dir: Path) -> dict[str, list[datetime]]:
        with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
            rows = con.execute(
                "select method, list(distinct origin order by origin) "
                "from forecast_backtest group by method"
            ).fetchall()
        return {method: [o.astimezone(UTC) for o in origins] for method, origins in rows}

    midnight = datetime.combine(END.date(), time(), UTC)
    before = scored(twins.incremental)
    assert set(before) == {"volcap", "predict_linear_6h", "predict_linear_window", "naive_7d"}
    assert all(o == [midnight - timedelta(days=1), midnight] for o in before.values())

    written = END
    for hour in (6, 7, 12, 13):  # the fill (END + 7h), then midnight and the hour after it
        twins.write(
            frame.filter(
                pl.col("snapshot_at").is_between(written, END + timedelta(hours=hour))
            ).filter(pl.col("snapshot_at") > written)
        )
        written = END + timedelta(hours=hour)
        result = twins.build(params=params)
        assert result.mode == "incremental"
        if hour == 7:
            with duckdb.connect(str(DataDir(twins.incremental).warehouse), read_only=True) as con:
                filled = con.execute(
                    "select count(*) from forecast_backtest where volume_id = 'filler' "
                    "and resource = 'bytes' and origin < $since and filled_at = $filled",
                    {"since": midnight, "filled": END + timedelta(hours=7)},
                ).fetchone()
            # each method's forecast from the day before, kept from earlier builds, now filled
            assert filled == (4,)
    assert result.since == end.date()
    after = scored(twins.incremental)
    assert all(o == [midnight, midnight + timedelta(days=1)] for o in after.values())
    with duckdb.connect(str(DataDir(twins.incremental).warehouse), read_only=True) as con:
        replayed = con.execute(
            f"select min(origin), count(distinct origin) from staging.{REPLAY_NAME}"
        ).fetchone()
    # the scored origins and the calibration day before the first
    assert replayed == (midnight - timedelta(days=1), 3)


def test_a_kept_forecast_whose_fill_left_the_lake_is_scored_by_a_full_build(tmp_path):
    """An hourly build scores anew only the series filled from its first changed day on: when
    the snapshots of a kept forecast's fill are deleted, no series is refilled, and the build
    falls back to a full one rather than keep a fill the lake no longer holds."""
    twins = Twins(tmp_path)
    params = ForecastParams(backtest_max_origins=2, calibration_days=1)
    # reaches its 1000 GiB quota 136.2 hours after the lake's start: END + 7h
    filler = Volume("filler", used=linear(773 * GIB, 40 * GIB), reconcile_every_hours=1)
    frame = snapshots([*fleet(), filler], hours=6 * 24, end=END + timedelta(hours=13))
    twins.write(frame.filter(pl.col("snapshot_at") <= END + timedelta(hours=8)))
    twins.build(params=params)
    with duckdb.connect(str(DataDir(twins.incremental).warehouse), read_only=True) as con:
        kept = con.execute(
            "select count(*) from forecast_backtest where volume_id = 'filler' "
            "and method <> 'volcap' and filled_at = $filled",
            {"filled": END + timedelta(hours=7)},
        ).fetchone()
    assert kept == (6,)  # three baselines at each of two origins
    for hour in (7, 8):
        gone = END + timedelta(hours=hour)
        twins.delete_snapshot(gone)
    result = twins.build(params=params)
    assert (result.mode, result.full_reason) == (
        "full",
        "a fill from the first changed day on left the lake",
    )


def test_the_backtest_origins_keep_the_observations_they_replay(tmp_path):
    """The replay reads a day before the forecast window before each of its origins (the scored
    ones and the calibration's days before them): with 20 origins, 7 calibration days and the
    28-day window the observations kept reach 55 days before as_of's day, past the trends
    window, and a build from that copy equals a full one."""
    twins = Twins(tmp_path)
    frame = snapshots(fleet()[:3], hours=24 * 70 + 13, end=END + timedelta(hours=13))
    twins.write(frame.filter(pl.col("snapshot_at") <= END), name="day.parquet")
    params = ForecastParams(backtest_max_origins=20, calibration_days=7)
    # one thread: the baselines' slopes over 70 days of sums amplify the float noise of parallel
    # aggregation past the comparison's 1e-6
    twins.build(params=params, threads=1)
    kept, _, stale = kept_observations(twins.incremental)
    origins = 20  # one a day, the last the day of as_of
    assert kept == datetime.combine(END.date(), time(), UTC) - timedelta(
        days=origins - 1 + params.calibration_days + params.window_days + 1
    )
    assert stale == 0
    twins.write(frame.filter(pl.col("snapshot_at") > END))
    result = twins.build(params=params, threads=1)
    assert result.mode == "incremental"
    # fewer origins: the horizon moves up to the trends window and most observations go (the
    # full build writes what stays, the incremental one deletes the rest)
    result = twins.build(params=SHORT, threads=1)
    assert result.mode == "incremental"
    kept_short, _, stale = kept_observations(twins.full)
    next_day = datetime.combine(END.date() + timedelta(days=1), time(), UTC)
    assert (kept_short, stale) == (next_day - timedelta(days=31), 0)


def catalog_of(data_dir: Path) -> list[tuple]:
    """Every table, view and column with its type and description, as a reader lists them."""
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        return con.execute(
            "select schema_name, table_name, column_name, data_type, comment from duckdb_columns() "
            "union all select schema_name, table_name, null, null, comment from duckdb_tables() "
            # a view's SQL names its build's lake links: its rows are compared instead
            "union all select schema_name, view_name, null, null, comment from duckdb_views() "
            "where not internal order by all"
        ).fetchall()


def file_blocks(data_dir: Path) -> tuple[int, int]:
    with duckdb.connect(str(DataDir(data_dir).warehouse), read_only=True) as con:
        return con.execute(
            "select total_blocks, free_blocks from pragma_database_size()"
        ).fetchone()


def test_a_compacted_build_publishes_the_same_warehouse_without_free_blocks(tmp_path):
    """Compacting (forced here; a build does it past a quarter of free blocks) copies every
    table, view and description into a fresh file, and the next build starts from it."""
    twins = Twins(tmp_path)
    twins.write(frame_until(HOURS))
    compacted = build_warehouse(twins.incremental, full=True, compact_free_share=0.0)
    build_warehouse(twins.full, full=True, compact_free_share=1.0)
    assert "compact" in compacted.timings
    for name in TABLES:
        assert_same_rows(name, table(twins.incremental, name), table(twins.full, name))
    assert catalog_of(twins.incremental) == catalog_of(twins.full)
    assert file_blocks(twins.incremental)[1] == 0
    assert not list(tmp_path.glob("*/*.building*"))
    twins.write(at(END + timedelta(hours=1)))
    result = twins.build(compact_free_share=0.0)
    assert result.mode == "incremental"
    assert file_blocks(twins.incremental)[1] == 0
