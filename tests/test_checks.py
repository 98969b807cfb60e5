"""Data-quality checks: one query per check in sql/checks/, each failing on what it looks for."""

from __future__ import annotations

import shutil
from datetime import timedelta

import duckdb
import pytest

from pipelines.assets.marts import MART_CHECKS
from pipelines.lake import DataDir
from pipelines.warehouse import build_warehouse, checks, connect_published
from tests.lakegen import END, Volume, snapshots, write_lake

HOURS = 48


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("checks")
    write_lake(data_dir, snapshots([Volume(str(i)) for i in range(4)], hours=HOURS))
    build_warehouse(data_dir)
    return data_dir


def broken(built, tmp_path, sql: str):
    """A copy of the built warehouse with `sql` run in it, as a read-only connection."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(DataDir(built).warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(sql)
    return duckdb.connect(str(copy), read_only=True)


#: a verdict on the forecasts' measured accuracy, not rows that break a rule: it reads
#: sql/report/forecast_receipts.sql like the report (pipelines/receipts.py `coverage`)
JUDGEMENTS = {"interval_coverage"}


def test_each_asset_check_has_its_query_named_after_it():
    names = {key.name for check in MART_CHECKS for key in check.check_keys} - JUDGEMENTS
    assert {path.stem for path in checks.CHECKS_DIR.glob("*.sql")} == names


def test_every_check_passes_on_a_sound_warehouse(built):
    with connect_published(built) as con:
        outcomes = {
            "unique": checks.check_unique_snapshots(con),
            "non_negative": checks.check_non_negative(con),
            "fresh": checks.check_fresh(con, now=END + timedelta(minutes=30)),
            "missing": checks.check_no_missing_snapshots(con, cadence_minutes=60),
            "drop": checks.check_row_count_stable(con),
            "forecast": checks.check_forecast_sanity(con),
        }
    assert {name: o.passed for name, o in outcomes.items() if not o.passed} == {}
    assert outcomes["fresh"].metadata["latest_snapshot_at"] == END.isoformat()
    assert outcomes["drop"].metadata["worst_drop_share"] == 0.0


@pytest.mark.parametrize(
    ("sql", "check", "figure"),
    [
        pytest.param(
            "create or replace view volume_snapshots as "
            "select * from staging.lake_volume_snapshots "
            "union all (select * from staging.lake_volume_snapshots limit 2)",
            checks.check_unique_snapshots,
            ("duplicated_keys", 2),
            id="duplicate-snapshot",
        ),
        pytest.param(
            "create or replace view volume_snapshots as "
            "select * replace (-1 as inode_count) from staging.lake_volume_snapshots",
            checks.check_non_negative,
            ("negative_rows", 4 * HOURS),
            id="negative-count",
        ),
        pytest.param(
            "update quota_forecast set days_to_full = -1 "
            "where volume_id = '0' and resource = 'bytes'",
            checks.check_forecast_sanity,
            ("bad_rows", 1),
            id="negative-days-to-full",
        ),
    ],
)
def test_a_check_fails_on_the_rows_it_looks_for_and_shows_the_first(
    built, tmp_path, sql, check, figure
):
    with broken(built, tmp_path, sql) as con:
        outcome = check(con)
    key, count = figure
    assert (outcome.passed, outcome.metadata[key]) == (False, count)
    assert 1 <= len(outcome.metadata["first"]) <= checks.SHOWN


def test_freshness_names_the_stalest_source_only_when_it_is_stale(built):
    with connect_published(built) as con:
        fresh = checks.check_fresh(con, now=END + timedelta(minutes=59))
        stale = checks.check_fresh(con, now=END + timedelta(hours=3))
    assert fresh.passed and "stale_sources" not in fresh.metadata
    assert not stale.passed
    assert (stale.metadata["stale_sources"], stale.metadata["age_minutes"]) == (1, 180.0)
