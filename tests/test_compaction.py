"""Compaction: a closed day's files become one sorted file, with the same rows, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest

from pipelines.compaction import closed_days, compact_day, compact_lake, compacted_name, day_folder
from pipelines.lake import DataDir
from pipelines.warehouse import build_warehouse
from tests.lakegen import END, Volume, snapshots, write_lake

HOURS = 72  # three days ending at END (12:00), so two closed days and the current one


def lake(tmp_path) -> tuple[DataDir, pl.DataFrame]:
    frame = snapshots([Volume("b"), Volume("a"), Volume("c")], hours=HOURS)
    write_lake(tmp_path, frame)
    return DataDir.at(tmp_path), frame


def published_snapshots(tmp_path) -> pl.DataFrame:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.sql("select * from volume_snapshots order by volume_id, snapshot_at").pl()


def test_only_closed_days_are_compacted_into_one_sorted_file(tmp_path):
    data, frame = lake(tmp_path)
    today = END.date()
    done = compact_lake(data, now=END)
    assert [c.day for c in done] == [
        d for d in sorted({t.date() for t in frame["snapshot_at"]}) if d < today
    ]
    for compacted in done:
        files = list(day_folder(data, compacted.day).glob("*.parquet"))
        assert [f.name for f in files] == [compacted_name(compacted.day)]
        rows = pl.read_parquet(files[0])
        assert rows.height == compacted.rows == 3 * compacted.files_in
        assert rows.select("volume_id", "snapshot_at").equals(
            rows.select("volume_id", "snapshot_at").sort("volume_id", "snapshot_at")
        )
    assert len(list(day_folder(data, today).glob("*.parquet"))) > 1  # the open day is untouched


def test_compaction_is_idempotent_and_builds_see_the_same_rows(tmp_path):
    data, _ = lake(tmp_path)
    build_warehouse(tmp_path, export_parquet=False)
    before = published_snapshots(tmp_path)
    compact_lake(data, now=END)
    assert compact_lake(data, now=END) == []
    build_warehouse(tmp_path, export_parquet=False)
    assert published_snapshots(tmp_path).equals(before)


def test_rows_stored_twice_keep_the_last_observation_during_and_after_compaction(tmp_path):
    """The moment between the compacted file's rename and the removal of the hourly files, and
    a late hourly rerun beside a compacted day, both hold rows twice: builds stay exact."""
    data, frame = lake(tmp_path)
    day = (END - timedelta(days=1)).date()
    compact_day(data, day)
    rerun = (
        frame.filter(pl.col("snapshot_at").dt.date() == day)
        .head(3)
        .with_columns(
            used_bytes=pl.lit(7, pl.Int64),
            observed_at=pl.col("observed_at") + timedelta(minutes=1),
        )
    )
    write_lake(tmp_path, rerun)  # hourly files beside the compacted day
    build_warehouse(tmp_path, export_parquet=False)
    rows = published_snapshots(tmp_path)
    assert rows.height == frame.height
    assert rows.filter(pl.col("used_bytes") == 7).height == 3
    assert day in closed_days(data, now=END)
    compact_day(data, day)
    assert len(list(day_folder(data, day).glob("*.parquet"))) == 1
    build_warehouse(tmp_path, export_parquet=False)
    assert published_snapshots(tmp_path).equals(rows)


@pytest.mark.parametrize("minute", [15, 20, 45])
def test_compaction_waits_for_a_writer_of_any_cadence(tmp_path, minute):
    """A 15- or 20-minute deployment writes :15, :20, :45 partitions: compaction must wait for
    those writers too, not only for the HH:00 ones."""
    data, frame = lake(tmp_path)
    day = min(t.date() for t in frame["snapshot_at"])
    files = sorted(day_folder(data, day).glob("*.parquet"))
    writing = datetime(day.year, day.month, day.day, 7, minute, tzinfo=UTC)
    with data.partition_lock(writing), pytest.raises(TimeoutError, match="another run holds"):
        compact_day(data, day, lock_timeout=0.2)
    assert sorted(day_folder(data, day).glob("*.parquet")) == files  # nothing touched
    assert compact_day(data, day) is not None  # once the writer is done
