"""quota_forecast and volume_risk on one seeded lake holding every forecasting scenario."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from pipelines.warehouse import build_warehouse, connect_published
from tests.lakegen import END, GIB, Volume, linear, noisy, snapshots, weekly, write_lake

HOURS = 30 * 24
#: Days from the lake's first hour to its last snapshot (as_of).
LAST_DAY = (HOURS - 1) / 24


def _cleanup(day: float) -> float:
    return 400 * GIB + 10 * GIB * day - (300 * GIB if day >= 20 else 0)


#: Day of the lake at which the rate_change volume starts writing four times faster.
RATE_CHANGE_DAY = 25.0


def _rate_change(day: float) -> float:
    return 100 * GIB + 5 * GIB * day + 15 * GIB * max(day - RATE_CHANGE_DAY, 0.0)


SCENARIOS = [
    Volume("steady", used=noisy(linear(100 * GIB, 10 * GIB), 2 * GIB, 1)),
    Volume(
        "critical", used=noisy(linear(500 * GIB, 20 * GIB), 2 * GIB, 2), max_size_bytes=1200 * GIB
    ),
    Volume(
        "warning", used=noisy(linear(200 * GIB, 10 * GIB), 2 * GIB, 3), max_size_bytes=700 * GIB
    ),
    Volume("weekly_cycle", used=noisy(weekly(500 * GIB, 150 * GIB), 2 * GIB, 4)),
    Volume("cleanup", used=noisy(_cleanup, 1 * GIB, 5)),
    Volume("rate_change", used=noisy(_rate_change, 1 * GIB, 11)),
    Volume(
        "quota_raise",
        used=noisy(linear(100 * GIB, 10 * GIB), 2 * GIB, 6),
        max_size_bytes=lambda day: 600 * GIB if day < 25 else 2000 * GIB,
    ),
    Volume("unlimited", used=linear(100 * GIB, 10 * GIB), max_size_bytes=None),
    Volume("shrinking", used=noisy(linear(800 * GIB, -5 * GIB), 2 * GIB, 7)),
    Volume("flat_noise", used=noisy(lambda day: 500 * GIB, 5 * GIB, 8)),
    Volume(
        "inode_bound",
        used=linear(100 * GIB, 1 * GIB),
        inodes=noisy(linear(10_000, 5_000), 200, 9),
        max_file_count=400_000,
    ),
    Volume("already_full", used=lambda day: 1000 * GIB),
    Volume("stale", used=linear(100 * GIB, 10 * GIB), stall_after_hour=HOURS - 1 - 72),
    Volume("deleted", used=linear(100 * GIB, 10 * GIB), last_hour=HOURS - 5),
    Volume("brand_new", used=linear(100 * GIB, 10 * GIB), first_hour=HOURS - 10),
    Volume("mounts_full", mount_count=8, max_mounts=8),
    Volume(
        "six_hourly",
        used=noisy(linear(100 * GIB, 10 * GIB), 2 * GIB, 10),
        reconcile_every_hours=6,
    ),
]


def _true_days(start: float, per_day: float, quota: float) -> float:
    return (quota - (start + per_day * LAST_DAY)) / per_day


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    data_dir = tmp_path_factory.mktemp("forecast")
    write_lake(data_dir, snapshots(SCENARIOS, hours=HOURS))
    build_warehouse(data_dir)
    con = connect_published(data_dir)
    yield con
    con.close()


def forecast(con: duckdb.DuckDBPyConnection, volume_id: str, resource: str = "bytes") -> dict:
    cursor = con.execute(
        "select * from quota_forecast where volume_id = ? and resource = ?", [volume_id, resource]
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    assert len(rows) == 1, f"{volume_id}/{resource}: {len(rows)} rows"
    return dict(zip(names, rows[0], strict=True))


def risk(con: duckdb.DuckDBPyConnection, volume_id: str) -> dict:
    cursor = con.execute("select * from volume_risk where volume_id = ?", [volume_id])
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


@pytest.mark.parametrize(
    ("volume_id", "start", "per_day", "quota", "expected_risk"),
    [
        ("steady", 100 * GIB, 10 * GIB, 1000 * GIB, "ok"),
        ("critical", 500 * GIB, 20 * GIB, 1200 * GIB, "critical"),
        ("warning", 200 * GIB, 10 * GIB, 700 * GIB, "warning"),
        ("six_hourly", 100 * GIB, 10 * GIB, 1000 * GIB, "ok"),
    ],
)
def test_steady_growth_days_to_full_within_10_percent_and_interval_covers_truth(
    warehouse, volume_id, start, per_day, quota, expected_risk
):
    row = forecast(warehouse, volume_id)
    truth = _true_days(start, per_day, quota)
    assert row["state"] == "filling"
    assert row["days_to_full"] == pytest.approx(truth, rel=0.10)
    assert row["days_to_full_low"] <= truth <= row["days_to_full_high"]
    assert row["growth_per_day"] == pytest.approx(per_day, rel=0.05)
    assert row["risk"] == expected_risk
    assert row["full_at"] == END + timedelta(days=row["days_to_full"])


def test_weekly_cycle_without_trend_is_flat_with_no_date(warehouse):
    row = forecast(warehouse, "weekly_cycle")
    assert row["state"] == "flat"
    assert row["days_to_full"] is None
    assert row["full_at"] is None
    assert row["risk"] == "ok"


def test_cleanup_drop_restarts_the_trend_after_the_drop(warehouse):
    row = forecast(warehouse, "cleanup")
    drop_at = END - timedelta(hours=HOURS - 1) + timedelta(days=20)
    assert row["trend_since"] >= drop_at - timedelta(hours=1)
    assert row["growth_per_day"] == pytest.approx(10 * GIB, rel=0.10)
    truth = (1000 * GIB - _cleanup(LAST_DAY)) / (10 * GIB)
    assert row["days_to_full"] == pytest.approx(truth, rel=0.10)


def test_a_change_of_growth_rate_restarts_the_trend_at_the_break(warehouse):
    """Five days of 20 GiB/day after 25 of 5 GiB/day: the forecast follows the new rate."""
    row = forecast(warehouse, "rate_change")
    change_at = END - timedelta(hours=HOURS - 1) + timedelta(days=RATE_CHANGE_DAY)
    assert row["trend_break"] is True
    assert abs(row["trend_since"] - change_at) <= timedelta(days=1)
    assert row["growth_per_day"] == pytest.approx(20 * GIB, rel=0.05)
    assert row["growth_per_day_before"] == pytest.approx(5 * GIB, rel=0.10)
    truth = (1000 * GIB - _rate_change(LAST_DAY)) / (20 * GIB)
    assert row["days_to_full"] == pytest.approx(truth, rel=0.10)
    assert row["days_to_full_low"] <= truth <= row["days_to_full_high"]


def test_only_a_change_of_rate_is_a_trend_break(warehouse):
    """Steady growth, cycles, noise, cleanups and quota raises keep their single line."""
    broken = warehouse.execute(
        "select distinct volume_id from quota_forecast where trend_break order by 1"
    ).fetchall()
    assert broken == [("rate_change",)]
    assert warehouse.execute(
        "select count(*) from quota_forecast where not trend_break "
        "and growth_per_day_before is not null"
    ).fetchone() == (0,)


def test_quota_raise_forecasts_against_the_current_quota_with_unbent_slope(warehouse):
    row = forecast(warehouse, "quota_raise")
    assert row["quota"] == 2000 * GIB
    assert row["growth_per_day"] == pytest.approx(10 * GIB, rel=0.05)
    assert row["days_to_full"] == pytest.approx(
        _true_days(100 * GIB, 10 * GIB, 2000 * GIB), rel=0.10
    )
    events = warehouse.execute(
        "select limit_name, old_value, new_value from quota_events where volume_id = 'quota_raise'"
    ).fetchall()
    assert events == [("max_size_bytes", 600 * GIB, 2000 * GIB)]


def test_unlimited_volume_is_unbounded_without_days(warehouse):
    row = forecast(warehouse, "unlimited")
    assert (row["state"], row["days_to_full"], row["utilization"]) == ("unbounded", None, None)
    assert row["growth_per_day"] == pytest.approx(10 * GIB)


def test_shrinking_volume_is_shrinking_without_days(warehouse):
    row = forecast(warehouse, "shrinking")
    assert (row["state"], row["days_to_full"], row["risk"]) == ("shrinking", None, "ok")


def test_flat_noise_is_flat(warehouse):
    row = forecast(warehouse, "flat_noise")
    assert (row["state"], row["days_to_full"], row["risk"]) == ("flat", None, "ok")


def test_inode_bound_volume_binds_on_inodes(warehouse):
    row = forecast(warehouse, "inode_bound", "inodes")
    assert row["state"] == "filling"
    assert row["days_to_full"] == pytest.approx(_true_days(10_000, 5_000, 400_000), rel=0.10)
    binding = risk(warehouse, "inode_bound")
    assert binding["binding_resource"] == "inodes"
    assert binding["days_to_full"] == row["days_to_full"]


def test_already_full_volume_is_full_now_and_critical(warehouse):
    row = forecast(warehouse, "already_full")
    assert (row["state"], row["days_to_full"], row["risk"]) == ("full", 0.0, "critical")
    assert (row["days_to_full_low"], row["days_to_full_high"]) == (0.0, 0.0)
    assert row["full_at"] == END


def test_stalled_reconciliation_is_stale_but_keeps_its_last_trend(warehouse):
    """A stalled volume may still be filling: hiding its date would hide the risk."""
    row = forecast(warehouse, "stale")
    assert row["state"] == "stale"
    assert row["last_reconciled_at"] < END - timedelta(hours=24)
    assert row["days_to_full"] == pytest.approx(
        _true_days(100 * GIB, 10 * GIB, 1000 * GIB), rel=0.1
    )


def test_deleted_volume_is_not_forecast(warehouse):
    count = warehouse.execute(
        "select count(*) from quota_forecast where volume_id = 'deleted'"
    ).fetchone()
    assert count == (0,)
    assert warehouse.execute(
        "select count(*) from volume_risk where volume_id = 'deleted'"
    ).fetchone() == (0,)


def test_brand_new_volume_has_insufficient_history(warehouse):
    row = forecast(warehouse, "brand_new")
    assert (row["state"], row["days_to_full"], row["growth_per_day"]) == (
        "insufficient_history",
        None,
        None,
    )


def test_mounts_at_their_limit_are_mount_pressure_not_a_risk(warehouse):
    """An attached volume at max_mounts is normal: it is shown, not ranked critical."""
    row = risk(warehouse, "mounts_full")
    assert (row["mount_count"], row["max_mounts"], row["mount_pressure"]) == (8, 8, 1.0)
    assert row["binding_resource"] in ("bytes", "inodes")
    assert (row["state"], row["risk"], row["days_to_full"]) == ("flat", "ok", None)


def test_risk_rank_puts_already_full_first_then_the_soonest_to_fill(warehouse):
    rows = warehouse.execute(
        "select volume_id, state, days_to_full_low from volume_risk "
        "where risk <> 'ok' order by risk_rank"
    ).fetchall()
    assert [r[0] for r in rows][:1] == ["already_full"]
    lows = [r[2] for r in rows if r[1] != "full"]
    assert lows == sorted(lows) and len(lows) >= 2
    ranks = warehouse.execute("select list(risk_rank order by risk_rank) from volume_risk")
    assert ranks.fetchone()[0] == list(range(1, len(SCENARIOS)))


def test_every_active_volume_has_two_forecasts_and_one_risk_row(warehouse):
    active = len(SCENARIOS) - 1
    assert warehouse.execute("select count(*) from quota_forecast").fetchone() == (2 * active,)
    assert warehouse.execute("select count(*) from volume_risk").fetchone() == (active,)
    assert warehouse.execute(
        "select count(*) from quota_forecast where as_of <> ?", [END]
    ).fetchone() == (0,)


def test_no_flat_volume_gets_a_date(warehouse):
    rows = warehouse.execute(
        "select volume_id from quota_forecast "
        "where state not in ('filling', 'full', 'stale') and days_to_full is not null"
    ).fetchall()
    assert rows == []
