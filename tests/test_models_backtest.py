"""forecast_backtest and forecast_accuracy on a seeded lake whose fills are known in advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines.models import models
from pipelines.warehouse import build_warehouse, connect_published
from pipelines.warehouse.engine import run_model
from pipelines.warehouse.incremental import replace_from
from pipelines.warehouse.params import ForecastParams
from pipelines.warehouse.schema import EPOCH
from tests.lakegen import END, GIB, Volume, linear, snapshots, write_lake

HOURS = 30 * 24
START = END - timedelta(hours=HOURS - 1)
#: The day of the lake at which `late_surge` starts writing 100 GiB/day.
SURGE_DAY = 15


def _late_surge(day: float) -> float:
    return 300 * GIB + 100 * GIB * max(day - SURGE_DAY, 0.0)


SCENARIOS = [
    # 500 GiB + 25 GiB/day against 1000 GiB: full on day 20
    Volume("fills", used=linear(500 * GIB, 25 * GIB)),
    # 100 GiB + 10 GiB/day: 400 GiB by the end, never full
    Volume("steady", used=linear(100 * GIB, 10 * GIB)),
    Volume("late_surge", used=_late_surge),
]
FILLS_AT = START + timedelta(days=20)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    data_dir = tmp_path_factory.mktemp("backtest")
    write_lake(data_dir, snapshots(SCENARIOS, hours=HOURS))
    # one build of a freshly back-filled lake: every method is scored on its first build
    build_warehouse(data_dir)
    con = connect_published(data_dir)
    con.execute("set timezone = 'UTC'")
    yield con
    con.close()


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_origins_are_each_midnight_with_a_day_of_data_before_it(warehouse):
    origins = warehouse.execute(
        "select distinct origin from forecast_backtest where method = 'naive_7d' order by 1"
    ).fetchall()
    first = (START + timedelta(days=1)).replace(hour=0)
    assert [o for (o,) in origins] == [first + timedelta(days=i) for i in range(len(origins))]
    assert origins[-1][0] <= END


def test_every_method_is_scored_on_the_same_origins(warehouse):
    origins = warehouse.execute(
        "select method, list(distinct origin order by origin) from forecast_backtest "
        "group by method"
    ).fetchall()
    assert len(origins) == 4
    assert len({tuple(days) for _, days in origins}) == 1


def test_a_volume_that_filled_is_scored_against_the_snapshot_it_filled_at(warehouse):
    scored = rows(
        warehouse,
        "select * from forecast_backtest where volume_id = 'fills' and resource = 'bytes' "
        "and method = 'predict_linear_window' and origin < $fills order by origin",
        {"fills": FILLS_AT},
    )
    assert len(scored) >= 15
    for row in scored:
        truth = (FILLS_AT - row["origin"]).total_seconds() / 86400
        assert row["filled_at"] == FILLS_AT
        assert not row["censored"]
        assert row["days_until_filled"] == pytest.approx(truth)
        assert row["days_to_full"] == pytest.approx(truth, abs=0.1)
        assert row["abs_error_days"] < 0.1
        assert row["risk"] == ("critical" if truth <= 7 else "warning" if truth <= 30 else "ok")
    after = rows(
        warehouse,
        "select state from forecast_backtest where volume_id = 'fills' and resource = 'bytes' "
        "and origin > $fills",
        {"fills": FILLS_AT},
    )
    assert after and {r["state"] for r in after} == {"full"}


def test_a_volume_that_never_filled_is_censored_without_an_error(warehouse):
    steady = rows(
        warehouse,
        "select * from forecast_backtest where volume_id = 'steady' and resource = 'bytes'",
    )
    assert steady
    assert all(r["censored"] for r in steady)
    assert {r["filled_at"] for r in steady} == {None}
    assert {r["abs_error_days"] for r in steady} == {None}


def test_no_forecast_sees_data_from_after_its_origin(warehouse):
    """The surge starts on day 15: no origin before it can know, every one after it does."""
    surge = START + timedelta(days=SURGE_DAY)
    before = rows(
        warehouse,
        "select * from forecast_backtest where volume_id = 'late_surge' and resource = 'bytes' "
        "and method <> 'volcap' and origin <= $surge",
        {"surge": surge},
    )
    assert before
    assert all(r["state"] != "filling" for r in before), before
    later = rows(
        warehouse,
        "select * from forecast_backtest where volume_id = 'late_surge' and resource = 'bytes' "
        "and method = 'predict_linear_6h' and origin > $later",
        {"later": surge + timedelta(days=1)},
    )
    assert later and {r["state"] for r in later} == {"filling", "full"}


def test_volcap_is_replayed_at_every_origin_of_a_fresh_lake(warehouse):
    """No earlier build recorded anything: the production forecast is replayed per origin."""
    origins = {
        method: [
            o
            for (o,) in warehouse.execute(
                "select distinct origin from forecast_backtest where method = $m order by 1",
                {"m": method},
            ).fetchall()
        ]
        for method in ("volcap", "naive_7d")
    }
    assert len(origins["volcap"]) >= 25
    assert origins["volcap"] == origins["naive_7d"]
    fills = rows(
        warehouse,
        "select * from forecast_backtest where method = 'volcap' and volume_id = 'fills' "
        "and resource = 'bytes' and origin between $from and $fills",
        {"from": START + timedelta(days=3), "fills": FILLS_AT - timedelta(days=1)},
    )
    assert fills
    for row in fills:
        truth = (FILLS_AT - row["origin"]).total_seconds() / 86400
        assert row["state"] == "filling"
        assert row["days_to_full"] == pytest.approx(truth, rel=0.05, abs=0.1)
        assert row["days_until_filled"] == pytest.approx(truth)


def test_volcap_knows_nothing_from_after_its_origin(warehouse):
    """The surge starts on day 15: the replayed forecast sees it only at later origins."""
    surge = START + timedelta(days=SURGE_DAY)
    volcap = rows(
        warehouse,
        "select origin, state from forecast_backtest where volume_id = 'late_surge' "
        "and resource = 'bytes' and method = 'volcap' order by origin",
    )
    before = [r["state"] for r in volcap if r["origin"] <= surge]
    later = [r["state"] for r in volcap if r["origin"] > surge + timedelta(days=2)]
    assert before and "filling" not in before, volcap
    assert later and set(later) <= {"filling", "full"} and "filling" in later, volcap


def test_the_replay_is_what_a_build_at_the_origin_forecasts(warehouse, tmp_path):
    """The same SQL and parameters on the same knowledge: a warehouse built just before an
    origin forecasts what the replay recorded for it (the interval aside: each is calibrated
    on its own history)."""
    origin = (START + timedelta(days=18)).replace(hour=0)
    write_lake(tmp_path, snapshots(SCENARIOS, hours=HOURS))
    build_warehouse(tmp_path, as_of=origin - timedelta(microseconds=1), export_parquet=False)
    with connect_published(tmp_path) as built:
        at_origin = {
            (r["volume_id"], r["resource"]): r for r in rows(built, "select * from quota_forecast")
        }
    replayed = rows(
        warehouse,
        "select * from staging.volcap_replay where origin = $origin",
        {"origin": origin},
    )
    assert {(r["volume_id"], r["resource"]) for r in replayed} == set(at_origin)
    for row in replayed:
        expected = at_origin[(row["volume_id"], row["resource"])]
        assert row["state"] == expected["state"], row
        if expected["days_to_full"] is None:
            assert row["days_to_full"] is None
        else:
            assert row["days_to_full"] == pytest.approx(expected["days_to_full"], abs=1e-6)


def test_accuracy_scores_each_method_per_horizon(warehouse):
    accuracy = {
        (r["method"], r["horizon"]): r for r in rows(warehouse, "select * from forecast_accuracy")
    }
    for method in ("predict_linear_window", "naive_7d", "predict_linear_6h"):
        week = accuracy[(method, "≤ 7 d")]
        assert week["scored"] >= 5
        assert week["mae_days"] < 0.5
        assert 0 < week["alert_recall"] <= 1
    window = accuracy[("predict_linear_window", "≤ 30 d")]
    assert window["median_lead_days"] > 7
    # the steady volume's forecasts are never scored, only counted as censored
    assert sum(r["censored"] for r in accuracy.values()) > 0


def test_the_receipts_read_as_one_line_and_as_a_table(warehouse):
    from pipelines import receipts

    figures = receipts.accuracy(warehouse)
    line = receipts.one_line(figures)
    scored = [r for r in figures if r["horizon"] == receipts.HEADLINE_HORIZON and r["scored"]]
    assert scored, figures  # `fills` fills on day 20: forecasts due within 7 days are scored
    assert line.startswith(f"Forecasts due {receipts.HEADLINE_HORIZON}, mean absolute error: ")
    for row in scored:
        assert f"{row['method']} {row['mae_days']:.1f} d ({int(row['scored']):,} scored)" in line
    table = receipts.markdown(figures).splitlines()
    assert len(table) == 2 + len(figures)
    assert {r["method"] for r in figures} <= {
        "volcap",
        "predict_linear_6h",
        "predict_linear_window",
        "naive_7d",
    }


def _volcap(horizon: str, scored: int, held: float) -> dict:
    return {"method": "volcap", "horizon": horizon, "intervals_scored": scored, "coverage_80": held}


@pytest.mark.parametrize(
    ("figures", "passed", "outside"),
    [
        pytest.param(
            [_volcap("≤ 7 d", 150, 0.8), _volcap("≤ 30 d", 150, 0.78)],
            True,
            None,
            id="inside-the-band",
        ),
        pytest.param(
            [_volcap("≤ 7 d", 150, 0.6), _volcap("≤ 30 d", 150, 0.95)],
            False,
            "≤ 7 d, ≤ 30 d",
            id="both-buckets-out-overall-in",
        ),
        pytest.param(
            [_volcap("≤ 7 d", 150, 0.8), _volcap("> 30 d", 20, 0.1)],
            False,
            "overall",
            id="a-small-bucket-is-not-judged-alone-but-counts-overall",
        ),
        pytest.param([_volcap("≤ 7 d", 40, 0.1)], None, None, id="too-few-is-skipped"),
    ],
)
def test_interval_coverage_is_judged_overall_and_per_bucket(figures, passed, outside):
    from pipelines import receipts

    verdict = receipts.coverage(figures, band=(0.75, 0.85), min_scored=100)
    assert verdict.passed is passed
    assert verdict.metadata.get("outside_band") == outside
    if passed is None:
        assert "too young" in verdict.metadata["skipped"]


def interval_fixture(origin: datetime) -> duckdb.DuckDBPyConnection:
    """forecast_backtest's inputs for one origin: `open` (unbounded late end), `late` (late end
    10.5 days) and `held` (filled at 10 days), each full in 10 days from 9.5."""
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute(
        "create table volcap_replay (source varchar, volume_id varchar, resource varchar, "
        "origin timestamptz, state varchar, days_to_full double, days_to_full_low double, "
        "days_to_full_high double, kind varchar, fingerprint varchar)"
    )
    con.execute(
        "create table backtest_baselines (source varchar, volume_id varchar, resource varchar, "
        "method varchar, origin timestamptz, state varchar, days_point double)"
    )
    con.execute(
        "create table forecast_calibration (source varchar, calibrated_at timestamptz, "
        "kind varchar, above_days double, up_to_days double, calibrated_from varchar, "
        "margin_low double, margin_high double, late_unbounded boolean)"
    )
    con.execute(
        "create table quota_fills (source varchar, volume_id varchar, resource varchar, "
        "snapshot_at timestamptz)"
    )
    con.execute("create table backtest_origins as select ?::timestamptz as origin", [origin])
    # every forecast: full in 10 days, from 9.5 days; late end 10.5 days or unbounded
    for volume, high in [("open", None), ("late", 10.5), ("held", None)]:
        con.execute(
            "insert into volcap_replay values ('fleet', ?, 'bytes', ?, 'filling', 10.0, 9.5, ?, "
            "'steady', 'x')",
            [volume, origin, high],
        )
    con.execute(
        "insert into quota_fills values ('fleet', 'held', 'bytes', ?)", [origin + timedelta(10)]
    )
    return con


def test_an_interval_is_scored_only_once_its_outcome_is_known():
    """A fill is scored against the interval; no fill is a miss once a finite late end has
    passed, and stays unknown under an unbounded one (it may fill within it yet, or never)."""
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    origin = as_of - timedelta(days=20)
    con = interval_fixture(origin)
    params = ForecastParams()
    # a full build: every origin scored
    bindings = {**params.bindings(as_of, as_of), "since": EPOCH, "previous_as_of": as_of}
    run_model(con, models()["forecast_backtest"], bindings)
    scored = dict(con.execute("select volume_id, in_interval from forecast_backtest").fetchall())
    assert scored == {"open": None, "late": False, "held": True}


def test_kept_rows_follow_the_clock_past_an_interval_end():
    """An incremental build keeps a row only while its interval's late end lies on the same
    side of the previous build's as_of and of its own: hour by hour past the `late` row's end
    (10.5 days), the kept and re-scored rows are those of a full build at each instant."""
    origin = datetime(2026, 3, 1, tzinfo=UTC)
    model = models()["forecast_backtest"]
    params = ForecastParams()
    incremental, full = interval_fixture(origin), interval_fixture(origin)
    previous = origin + timedelta(days=10)
    first = {**params.bindings(previous, previous), "since": EPOCH, "previous_as_of": previous}
    run_model(incremental, model, first)
    for hours in range(10 * 24 + 6, 10 * 24 + 18, 3):
        as_of = origin + timedelta(hours=hours)
        since = previous.date()
        bindings = {**params.bindings(as_of, as_of), "since": since, "previous_as_of": previous}
        replace_from(incremental, model, bindings, since)
        run_model(full, model, {**bindings, "since": EPOCH, "previous_as_of": as_of})
        rows = "select * from forecast_backtest order by all"
        assert incremental.execute(rows).fetchall() == full.execute(rows).fetchall(), as_of
        previous = as_of
    late = "select in_interval from forecast_backtest where volume_id = 'late'"
    assert incremental.execute(late).fetchall() == [(False,)]
