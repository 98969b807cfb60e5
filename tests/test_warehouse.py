"""Publishing: atomic swap under readers, history carried across builds, exports, Dagster."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.assets.marts import MART_ASSETS, MART_CHECKS, model_key
from pipelines.compaction import compact_day
from pipelines.lake import DataDir
from pipelines.models import models
from pipelines.resources import WarehouseResource
from pipelines.warehouse import (
    DAY_EXPORTS,
    EXPORTED_TABLES,
    EmptyLakeError,
    build_warehouse,
    connect_published,
    lake_view,
)
from tests.lakegen import END, Volume, snapshots, write_lake

HOURS = 48
HOUR = timedelta(hours=1)


def lake(tmp_path, volumes=None, hours=HOURS, end=END):
    write_lake(tmp_path, snapshots(volumes or [Volume("a"), Volume("b")], hours=hours, end=end))


def test_empty_lake_fails_clearly_and_publishes_nothing(tmp_path):
    with pytest.raises(EmptyLakeError, match="no snapshot files"):
        build_warehouse(tmp_path)
    assert not DataDir(tmp_path).warehouse.exists()


def test_build_reports_rows_risk_counts_and_publishes_private_files(tmp_path):
    lake(tmp_path)
    result = build_warehouse(tmp_path)
    assert result.rows["volume_snapshots"] == 2 * HOURS
    assert result.rows["volume_risk"] == 2
    assert (result.critical, result.warning) == (0, 0)
    assert result.as_of == END
    assert "2 active volumes" in result.summary()
    assert stat.S_IMODE(result.path.stat().st_mode) & 0o007 == 0
    for table in EXPORTED_TABLES:
        exported = tmp_path / "marts" / f"{table}.parquet"
        assert stat.S_IMODE(exported.stat().st_mode) & 0o007 == 0
        count = duckdb.execute("select count(*) from read_parquet(?)", [str(exported)]).fetchone()
        assert count == (result.rows[table],)
    for table in DAY_EXPORTS:
        files = sorted((tmp_path / "marts" / table).glob("*.parquet"))
        assert [f.stem for f in files] == ["2026-02-28", "2026-03-01", "2026-03-02"]
        assert all(stat.S_IMODE(f.stat().st_mode) & 0o007 == 0 for f in files)
        count = duckdb.execute(
            "select count(*) from read_parquet(?)", [str(tmp_path / "marts" / table / "*.parquet")]
        ).fetchone()
        assert count == (result.rows[table],)
    assert sorted(p.name for p in tmp_path.iterdir() if "building" in p.name) == []


def test_an_hourly_build_rewrites_only_the_changed_days_of_a_day_export(tmp_path):
    lake(tmp_path)
    build_warehouse(tmp_path)
    folder = tmp_path / "marts" / "volume_daily"
    before = {f.stem: f.stat().st_ino for f in folder.glob("*.parquet")}
    (folder / "2020-01-01.parquet").write_bytes(b"a day the table does not hold")
    (folder / "2026-02-28.parquet").unlink()  # a missing file is written again
    grown = snapshots([Volume("a"), Volume("b")], hours=HOURS + 1, end=END + HOUR)
    write_lake(tmp_path, grown.filter(pl.col("snapshot_at") == END + HOUR))
    result = build_warehouse(tmp_path)
    assert (result.mode, result.since) == ("incremental", END.date())
    after = {f.stem: f.stat().st_ino for f in folder.glob("*.parquet")}
    assert sorted(after) == ["2026-02-28", "2026-03-01", "2026-03-02"]
    assert after["2026-03-01"] == before["2026-03-01"]  # before `since`: not rewritten
    assert after["2026-03-02"] != before["2026-03-02"]
    with duckdb.connect(str(result.path), read_only=True) as con:
        table = con.execute("select * from volume_daily order by all").fetchall()
    exported = duckdb.execute(
        "select * from read_parquet(?) order by all", [str(folder / "*.parquet")]
    ).fetchall()
    assert exported == table


def test_the_hourly_history_is_not_exported_and_an_old_export_is_removed(tmp_path):
    lake(tmp_path)
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "volume_snapshots.parquet").write_bytes(b"an older build's export")
    build_warehouse(tmp_path)
    assert "volume_snapshots" not in EXPORTED_TABLES
    assert not (tmp_path / "marts" / "volume_snapshots.parquet").exists()


def test_the_hourly_history_is_a_view_over_the_lake_that_opens_from_any_directory(tmp_path):
    lake(tmp_path)
    result = build_warehouse(tmp_path)
    with connect_published(tmp_path) as con:
        kinds = dict(
            con.execute("select table_name, table_type from information_schema.tables").fetchall()
        )
    assert kinds["volume_snapshots"] == "VIEW"
    assert kinds["volume_daily"] == "BASE TABLE"
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print(con.execute('select count(*) from volume_snapshots').fetchone()[0])\n",
            str(DataDir(tmp_path).warehouse.resolve()),
        ],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(reader.stdout) == result.rows["volume_snapshots"] == 2 * HOURS


def test_a_reader_keeps_its_builds_snapshots_while_the_lake_is_compacted(tmp_path):
    lake(tmp_path)
    build_warehouse(tmp_path)
    day = (END - timedelta(days=1)).date()
    hourly = list((tmp_path / "lake" / "volume_snapshots" / f"snapshot_date={day}").iterdir())
    query = "select count(*), sum(used_bytes) from volume_snapshots"
    with connect_published(tmp_path) as held:
        before = held.execute(query).fetchone()
        assert compact_day(DataDir.at(tmp_path), day) is not None
        assert not any(path.exists() for path in hourly)
        write_lake(tmp_path, snapshots([Volume("a"), Volume("b")], hours=1, end=END + HOUR))
        build_warehouse(tmp_path)
        assert held.execute(query).fetchone() == before
    with connect_published(tmp_path) as fresh:
        assert fresh.execute(query).fetchone()[0] == before[0] + 2


def test_lake_links_of_earlier_builds_are_removed_after_their_grace(tmp_path, monkeypatch):
    lake(tmp_path)
    for _ in range(3):
        build_warehouse(tmp_path)
    assert len(list(DataDir(tmp_path).warehouse_links.iterdir())) == 3
    monkeypatch.setattr(lake_view, "LAKE_LINKS_GRACE", timedelta(0))
    build_warehouse(tmp_path)
    # this build's links, and the newest earlier ones (the next build reads them)
    assert len(list(DataDir(tmp_path).warehouse_links.iterdir())) == 2


def test_volcap_build_without_a_dagster_home_builds_without_loading_dagster(tmp_path):
    lake(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pipelines.cli import main\n"
            "code = main(['build'])\n"
            "print('dagster loaded' if 'dagster' in sys.modules else 'dagster not loaded')\n"
            "sys.exit(code)\n",
        ],
        env={**env, "VOLCAP_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    line, loaded = done.stdout.strip().splitlines()
    assert line.startswith(f"built {len(models())} tables (")
    assert "volume_risk 2) — 0 critical, 0 warning" in line
    assert loaded == "dagster not loaded"
    with connect_published(tmp_path) as con:
        assert con.execute("select count(*) from volumes").fetchone() == (2,)


def test_leftovers_of_a_killed_build_are_removed(tmp_path):
    lake(tmp_path)
    (tmp_path / "warehouse.duckdb.dead.building").write_bytes(b"junk")
    (tmp_path / "warehouse.duckdb.dead.building.wal").write_bytes(b"junk")
    build_warehouse(tmp_path)
    assert not any("building" in p.name for p in tmp_path.iterdir())


def on_warehouse(data_dir, script: str) -> subprocess.Popen[str]:
    """Another process running `script` (duckdb and sys imported, the published warehouse's
    path as sys.argv[1]), talking through its stdin and stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys\n" + script, str(DataDir(data_dir).warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_reader_keeps_the_old_build_and_a_new_connection_sees_the_new_one(tmp_path):
    lake(tmp_path, [Volume("a")])
    build_warehouse(tmp_path)
    reader = on_warehouse(
        tmp_path,
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(con.execute('select count(*) from volumes').fetchone()[0], flush=True)\n"
        "sys.stdin.readline()\n"
        "print(con.execute('select count(*) from volumes').fetchone()[0], flush=True)\n",
    )
    try:
        assert reader.stdout.readline().strip() == "1"
        lake(tmp_path, [Volume("b"), Volume("c")])  # overwrites every snapshot file
        build_warehouse(tmp_path)
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "1"
    finally:
        reader.communicate(timeout=30)
    assert reader.returncode == 0
    with connect_published(tmp_path) as con:
        assert con.execute("select count(*) from volumes").fetchone() == (2,)


def test_a_writer_holding_the_old_file_does_not_block_the_build(tmp_path):
    lake(tmp_path)
    build_warehouse(tmp_path, as_of=END - timedelta(hours=1))
    holder = on_warehouse(
        tmp_path,
        "con = duckdb.connect(sys.argv[1])\nprint('open', flush=True)\nsys.stdin.readline()\n",
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        build_warehouse(tmp_path)
    finally:
        holder.communicate("\n", timeout=30)
    with connect_published(tmp_path) as con:
        as_ofs = con.execute("select count(distinct as_of) from quota_forecast_history").fetchone()
    assert as_ofs == (2,), "history came from the Parquet export"


def test_history_is_carried_across_builds_and_a_rebuild_replaces_its_as_of(tmp_path):
    lake(tmp_path)
    first, second = END - timedelta(hours=5), END
    build_warehouse(tmp_path, as_of=first)
    build_warehouse(tmp_path, as_of=second)
    build_warehouse(tmp_path, as_of=second)
    with connect_published(tmp_path) as con:
        rows = con.execute(
            "select as_of, count(*) from quota_forecast_history group by as_of order by as_of"
        ).fetchall()
    assert rows == [(first, 4), (second, 4)]


def test_warehouse_assets_materialize_and_their_checks_pass(tmp_path):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    lake(tmp_path, end=now)
    result = dg.materialize(
        [*MART_ASSETS, *MART_CHECKS],
        resources={"warehouse": WarehouseResource(data_dir=str(tmp_path))},
    )
    assert result.success
    keys = {
        e.event_specific_data.materialization.asset_key
        for e in result.get_asset_materialization_events()
    }
    assert keys == {model_key(t) for t in models()}
    receipts = [
        e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key
        in (model_key("forecast_backtest"), model_key("forecast_accuracy"))
    ]
    assert len(receipts) == 2
    assert receipts[0]["accuracy"].value == receipts[1]["accuracy"].value
    assert receipts[0]["accuracy"].value.startswith("| horizon | method | forecasts |")
    evaluations = result.get_asset_check_evaluations()
    # a lake of a few days has too few known outcomes to judge the intervals by
    [coverage] = [e for e in evaluations if e.check_name == "interval_coverage"]
    assert "too young" in coverage.metadata["skipped"].value
    assert len(evaluations) == len(MART_CHECKS)
    assert all(e.passed for e in evaluations), [
        (e.check_name, e.metadata) for e in evaluations if not e.passed
    ]


def test_checks_flag_a_gap_and_a_row_drop(tmp_path):
    volumes = [Volume(str(i), last_hour=HOURS - 2 if i < 3 else None) for i in range(10)]
    frame = snapshots(volumes, hours=HOURS)
    frame = frame.filter(frame["snapshot_at"] != END - timedelta(hours=5))
    write_lake(tmp_path, frame)
    build_warehouse(tmp_path)

    with connect_published(tmp_path) as con:
        gap = warehouse.check_no_missing_snapshots(con)
        drop = warehouse.check_row_count_stable(con)
        stale = warehouse.check_fresh(con, now=END + timedelta(hours=3))
    assert (gap.passed, gap.metadata["missing_snapshots"]) == (False, 1)
    assert (drop.passed, drop.metadata["worst_drop_share"]) == (False, 0.3)
    assert not stale.passed


def test_history_keeps_every_recent_build_and_one_build_per_older_day(tmp_path):
    lake(tmp_path, hours=14 * 24)
    old_morning, old_evening = END - timedelta(days=10, hours=6), END - timedelta(days=10)
    recent_morning, recent_evening = END - timedelta(hours=6), END - timedelta(hours=1)
    for as_of in (old_morning, old_evening, recent_morning, recent_evening, END):
        build_warehouse(tmp_path, as_of=as_of)
    with connect_published(tmp_path) as con:
        kept = [
            row[0]
            for row in con.execute(
                "select distinct as_of from quota_forecast_history order by as_of"
            ).fetchall()
        ]
    # older than a week: only the day's last build stays; the last week: every build
    assert kept == [old_evening, recent_morning, recent_evening, END]
