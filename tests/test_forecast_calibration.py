"""forecast_calibration on a seeded replay: margins per kind, and narrowing only where the
kind's own fills support it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from pipelines.models import models
from pipelines.warehouse.engine import run_model
from pipelines.warehouse.params import ForecastParams
from pipelines.warehouse.schema import EPOCH

#: the instant calibrated: every seeded forecast was made in the 20 days before it
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
#: each seeded forecast: "full in 10 days", its model interval 9.5 to 10.5 days
PREDICTED, LOW, HIGH = 10.0, 9.5, 10.5


def _seed(con: duckdb.DuckDBPyConnection, kind: str, fills_after: list[float | None]) -> None:
    """One forecast of `kind` per entry, made 20 to 11 days before AS_OF (so its late end has
    passed), filled that many days after its origin (None: never filled)."""
    for i, days in enumerate(fills_after):
        origin = AS_OF - timedelta(days=20 - i % 10)
        volume = f"{kind}-{i}"
        con.execute(
            "insert into volcap_replay values ('fleet', ?, 'bytes', ?, 'filling', ?, ?, ?, ?, 'x')",
            [volume, origin, PREDICTED, LOW, HIGH, kind],
        )
        if days is not None:
            con.execute(
                "insert into quota_fills values ('fleet', ?, 'bytes', ?)",
                [volume, origin + timedelta(days=days)],
            )


@pytest.fixture
def calibration() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute("create schema staging")
    con.execute(
        "create table volcap_replay (source varchar, volume_id varchar, resource varchar, "
        "origin timestamptz, state varchar, days_to_full double, days_to_full_low double, "
        "days_to_full_high double, kind varchar, fingerprint varchar)"
    )
    con.execute(
        "create table quota_fills (source varchar, volume_id varchar, resource varchar, "
        "snapshot_at timestamptz)"
    )
    # steady: 40 forecasts, every one filled just after the predicted day (10.2 to 10.4 d)
    _seed(con, "steady", [10.2 + (i % 3) / 10 for i in range(40)])
    # shifted: 40 forecasts, 4 filled mid-interval, the rest never (cleaned up in time)
    _seed(con, "shifted", [10.0] * 4 + [None] * 36)
    # the origin calibrated: AS_OF itself (margins hold for the replay's scored origins)
    con.execute(
        "insert into volcap_replay values ('fleet', 'now', 'bytes', ?, 'flat', null, null, "
        "null, 'steady', 'x')",
        [AS_OF],
    )
    con.execute("create table backtest_origins as select ?::timestamptz as origin", [AS_OF])
    params = ForecastParams(calibration_days=28, calibration_min_scores=30)
    # a full build: every instant computed
    bindings = {**params.bindings(AS_OF, AS_OF), "since": EPOCH}
    run_model(con, models()["forecast_calibration"], bindings)
    yield con
    con.close()


def _margins(con: duckdb.DuckDBPyConnection, kind: str) -> tuple[str, float, float | None]:
    row = con.execute(
        "select calibrated_from, margin_low, margin_high from staging.forecast_calibration "
        "where calibrated_at = ? and horizon = '≤ 30 d' and kind = ?",
        [AS_OF, kind],
    ).fetchone()
    assert row is not None
    return row


def test_a_kind_whose_fills_all_come_after_the_early_end_narrows_it(calibration):
    """40 fills, none before the model's early end: the early end may move towards the
    predicted day on the kind's own evidence."""
    calibrated_from, margin_low, _ = _margins(calibration, "steady")
    assert calibrated_from == "kind"
    assert margin_low < 0


def test_forecasts_that_never_fill_do_not_license_a_narrower_early_end(calibration):
    """36 of 40 never filled: none of them can be early, but 4 fills are too few to cut the
    early end of the forecasts that do fill."""
    calibrated_from, margin_low, margin_high = _margins(calibration, "shifted")
    assert calibrated_from == "kind"
    assert margin_low >= 0
    assert margin_high is None  # 90% late: no finite late end holds them


def test_margins_pooled_across_kinds_only_widen(calibration):
    """A kind without outcomes of its own (`short`) takes pooled margins, never a narrowing
    learnt from other kinds."""
    calibrated_from, margin_low, margin_high = _margins(calibration, "short")
    assert calibrated_from in {"bucket", "pooled"}
    assert margin_low >= 0
    assert margin_high is None or margin_high >= 0


def test_under_an_unbounded_late_end_the_early_budget_is_a_fifth_of_the_fills(calibration):
    """10 of 40 filled, 3 of them before the model's early end; 30 never filled, so no finite
    late end holds. A forecast not filled under an unbounded late end is never scored, so the
    30 must not dilute the early misses: at most 2 of the 10 fills may come before the early
    end, which moves out to 9.0 days (margin 0.05 x 10 days)."""
    _seed(calibration, "noisy", [8.0, 8.5, 9.0] + [10.0] * 7 + [None] * 30)
    bindings = {
        **ForecastParams(calibration_days=28, calibration_min_scores=30).bindings(AS_OF, AS_OF),
        "since": EPOCH,
    }
    run_model(calibration, models()["forecast_calibration"], bindings)
    calibrated_from, margin_low, margin_high = _margins(calibration, "noisy")
    assert calibrated_from == "kind"
    assert margin_high is None
    assert margin_low == pytest.approx(0.05)
