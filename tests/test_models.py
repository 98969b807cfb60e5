"""Each staging and mart model on a small crafted lake."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.models import load_models, models
from pipelines.warehouse import build_warehouse, connect_published
from tests.lakegen import END, GIB, Volume, linear, snapshots, write_lake

HOURS = 48
START = END - timedelta(hours=HOURS - 1)


def build(tmp_path, volumes, hours=HOURS, **kwargs):
    frame = snapshots(volumes, hours=hours)
    write_lake(tmp_path, frame)
    build_warehouse(tmp_path, **kwargs)
    return connect_published(tmp_path)


def test_models_are_discovered_in_dependency_order_with_derived_deps():
    found = models()
    order = list(found)
    for model in found.values():
        assert all(order.index(dep) < order.index(model.name) for dep in model.deps)
        assert model.description, f"{model.name} lacks a header comment"
    assert found["volume_snapshots"].sources == ("lake_volume_snapshots",)
    assert found["volume_risk"].deps == ("quota_forecast", "volumes")
    assert "as_of" in found["quota_forecast"].parameters


def test_a_relation_named_in_a_comment_is_not_a_dependency(tmp_path):
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "a.sql").write_text("-- reads nothing from b\nselect 1 as x")
    (tmp_path / "marts" / "b.sql").write_text("select * from a")
    found = load_models(tmp_path)
    assert (found["a"].deps, found["b"].deps) == ((), ("a",))


def test_incremental_needs_are_declared_in_the_model_headers():
    """The engine knows no model by name: what an incremental build does besides rebuilding a
    model whole is read from its header."""
    found = models()
    observations = found["volume_observations"]
    assert observations.incremental == "first_seen_at"
    assert observations.also_replaces == "volume_observations_before"
    assert observations.grain == ("source", "volume_id", "reconciled_at")
    history = found["quota_forecast_history"]
    assert (history.append, history.incremental) == (True, None)
    assert [m.name for m in found.values() if m.append or m.also_replaces] == [
        "volume_observations",
        "quota_forecast_history",
    ]
    # the changes its kept rows cannot follow, each with the reason a full build gives
    backtest = found["forecast_backtest"]
    assert [reason for _, reason in backtest.full_when] == [
        "an origin before the first changed day entered the backtest",
        "a fill from the first changed day on left the lake",
    ]
    assert "copy_of_backtest_origins" in backtest.full_when[0][0]
    assert [m.name for m in found.values() if m.full_when] == ["forecast_backtest"]


@pytest.mark.parametrize(
    ("header", "error"),
    [
        pytest.param(
            "-- incremental: append\n", "does not read previous_a", id="append-no-previous"
        ),
        pytest.param(
            "-- incremental also replaces: b\n", "no incremental column or grain", id="no-grain"
        ),
        pytest.param(
            "-- incremental full when: true -- always\n",
            "keeps rows but has no incremental column",
            id="full-when-not-incremental",
        ),
    ],
)
def test_a_header_the_engine_cannot_follow_is_refused(tmp_path, header, error):
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "a.sql").write_text(f"-- a\n{header}select 1 as x")
    with pytest.raises(ValueError, match=error):
        load_models(tmp_path)


def test_volume_snapshots_keeps_one_row_per_volume_and_snapshot_the_last_observed(tmp_path):
    frame = snapshots([Volume("v1"), Volume("v2")], hours=HOURS)
    write_lake(tmp_path, frame)
    later = frame.with_columns(
        pl.col("observed_at") + pl.duration(minutes=5), used_bytes=pl.lit(7, pl.Int64)
    )
    write_lake(tmp_path, later, name="compacted.parquet")
    build_warehouse(tmp_path)
    con = connect_published(tmp_path)
    assert con.execute("select count(*) from volume_snapshots").fetchone() == (2 * HOURS,)
    assert con.execute("select distinct used_bytes from volume_snapshots").fetchall() == [(7,)]
    lake_columns = [c[0] for c in con.execute("describe volume_snapshots").fetchall()]
    assert lake_columns == list(frame.columns)


def test_volumes_tracks_first_and_last_seen_activity_and_deletion(tmp_path):
    con = build(
        tmp_path,
        [Volume("kept"), Volume("late", first_hour=10), Volume("gone", last_hour=30)],
    )
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select volume_id, first_seen, last_seen, is_active, deleted_at from volumes"
        ).fetchall()
    }
    hour = lambda h: START + timedelta(hours=h)  # noqa: E731
    assert rows["kept"] == (hour(0), END, True, None)
    assert rows["late"] == (hour(10), END, True, None)
    assert rows["gone"] == (hour(0), hour(29), False, hour(30))


def test_volume_observations_count_a_reconciliation_once(tmp_path):
    con = build(tmp_path, [Volume("v", used=linear(GIB, GIB), reconcile_every_hours=6)])
    assert con.execute("select count(*) from staging.volume_observations").fetchone() == (
        HOURS // 6,
    )


def test_volume_daily_rolls_up_last_and_max_with_end_of_day_quota(tmp_path):
    con = build(
        tmp_path,
        [
            Volume(
                "v",
                used=lambda day: GIB * (5 if (day * 24) % 24 == 3 else 1),
                max_size_bytes=lambda day: 10 * GIB if day < 0.5 else None,
            )
        ],
        hours=24,
    )
    rows = con.execute(
        "select day, used_bytes_last, used_bytes_max, max_size_bytes, bytes_utilization, "
        "snapshot_count from volume_daily order by day"
    ).fetchall()
    # the 24 hours run from 13:00 to 12:00 the next day: two UTC days
    assert [r[0] for r in rows] == [date(2026, 3, 1), date(2026, 3, 2)]
    first, second = rows
    assert first[1:] == (GIB, 5 * GIB, 10 * GIB, 0.1, 11)
    assert second[1:] == (GIB, GIB, None, None, 13)


def test_fleet_daily_counts_statuses_including_unknown_ones_and_unlimited(tmp_path):
    con = build(
        tmp_path,
        [
            Volume("a", status="available"),
            Volume("b", status="attached", max_size_bytes=None),
            Volume("c", status="migrating"),
        ],
    )
    row = con.execute(
        "select volumes, volumes_available, volumes_attached, volumes_other_status, "
        "used_bytes, bounded_quota_bytes, bounded_utilization, unlimited_volumes "
        "from fleet_daily order by day desc limit 1"
    ).fetchone()
    assert row == (3, 1, 1, 1, 300 * GIB, 2000 * GIB, 0.1, 1)


def test_quota_events_record_each_limit_change_including_to_unlimited(tmp_path):
    con = build(
        tmp_path,
        [Volume("v", max_mounts=lambda day: 8 if day < 1 else None)],
    )
    events = con.execute(
        "select limit_name, old_value, new_value, changed_at from quota_events"
    ).fetchall()
    assert events == [("max_mounts", 8, None, START + timedelta(hours=24))]


def test_capacity_trends_give_volume_and_fleet_growth(tmp_path):
    con = build(tmp_path, [Volume("v", used=linear(GIB, 24 * GIB))], hours=24 * 10)
    rows = dict(
        con.execute(
            "select scope, bytes_growth_per_day_7d from capacity_trends order by scope"
        ).fetchall()
    )
    assert rows["volume"] == pytest.approx(24 * GIB)
    assert rows["fleet"] == pytest.approx(24 * GIB, rel=0.01)


def test_as_of_in_the_past_ignores_later_snapshots(tmp_path):
    con = build(tmp_path, [Volume("v")], as_of=START + timedelta(hours=10))
    assert con.execute("select count(*), max(snapshot_at) from volume_snapshots").fetchone() == (
        11,
        START + timedelta(hours=10),
    )
