"""fleet_forecast: the whole fleet's least-squares line and prediction interval, at the build's
interval coverage, on small seeded lakes."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from pipelines import report
from pipelines.warehouse import ForecastParams, build_warehouse, connect_published
from tests.lakegen import GIB, Volume, linear, noisy, snapshots, write_lake

DAYS = 6


def _build(data_dir: Path, hours: int, params: ForecastParams | None = None) -> None:
    volumes = [
        Volume("a", used=noisy(linear(300 * GIB, 10 * GIB), 4 * GIB, 1)),
        Volume("b", used=noisy(linear(200 * GIB, 5 * GIB), 4 * GIB, 2)),
    ]
    write_lake(data_dir, snapshots(volumes, hours=hours))
    build_warehouse(data_dir, params=params)


def _rows(data_dir: Path, sql: str) -> list[dict[str, Any]]:
    with connect_published(data_dir) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_fleet_line_and_its_80_percent_interval_follow_the_end_of_day_totals(
    tmp_path: Path,
) -> None:
    _build(tmp_path, DAYS * 24)
    days = _rows(tmp_path, "select snapshot_at, used_bytes from fleet_daily order by day")
    forecast = _rows(tmp_path, "select * from fleet_forecast order by days_ahead")
    as_of = forecast[0]["as_of"]
    x = [(d["snapshot_at"] - as_of).total_seconds() / 86400 for d in days]
    y = [float(d["used_bytes"]) for d in days]
    fit = statistics.linear_regression(x, y)
    residuals = [v - fit.intercept - fit.slope * u for u, v in zip(x, y, strict=True)]
    sigma = math.sqrt(sum(r * r for r in residuals) / (len(x) - 2))
    mean_x = statistics.fmean(x)
    sxx = sum((u - mean_x) ** 2 for u in x)
    z = statistics.NormalDist().inv_cdf(0.9)  # the default coverage, 80%

    assert [r["days_ahead"] for r in forecast] == list(range(31))
    assert {r["fit_days"] for r in forecast} == {len(days)}
    assert math.isclose(forecast[0]["growth_per_day"], fit.slope, rel_tol=1e-9)
    assert 13 * GIB < fit.slope < 17 * GIB  # the volumes grow by 15 GiB a day together
    for row in forecast:
        h = row["days_ahead"]
        half = z * sigma * math.sqrt(1 + 1 / len(x) + (h - mean_x) ** 2 / sxx)
        assert math.isclose(row["used_bytes"], fit.intercept + fit.slope * h, rel_tol=1e-9)
        assert math.isclose(row["used_bytes_high"] - row["used_bytes"], half, rel_tol=1e-6)
        assert math.isclose(row["used_bytes"] - row["used_bytes_low"], half, rel_tol=1e-6)
        assert (row["forecast_at"] - row["as_of"]).total_seconds() == h * 86400


def test_the_interval_widens_with_the_builds_coverage(tmp_path: Path) -> None:
    narrow, wide = tmp_path / "80", tmp_path / "95"
    _build(narrow, DAYS * 24)
    _build(wide, DAYS * 24, ForecastParams(interval_coverage=0.95))
    sql = "select used_bytes, used_bytes_high - used_bytes as half from fleet_forecast order by 1"
    ratio = statistics.NormalDist().inv_cdf(0.975) / statistics.NormalDist().inv_cdf(0.9)
    for a, b in zip(_rows(narrow, sql), _rows(wide, sql), strict=True):
        assert a["used_bytes"] == b["used_bytes"]
        assert math.isclose(b["half"] / a["half"], ratio, rel_tol=1e-9)
    coverage = "select distinct interval_coverage from fleet_forecast"
    assert _rows(narrow, coverage) == [{"interval_coverage": 0.8}]
    assert _rows(wide, coverage) == [{"interval_coverage": 0.95}]
    # the report names the band after the coverage the build used
    data = report.load(wide)
    assert data.forecast is not None and data.forecast.interval == "95% interval"
    assert "(95% interval " in report.render(data)


def test_no_forecast_before_three_days_of_totals(tmp_path: Path) -> None:
    _build(tmp_path, 30)  # two UTC days: the lake ends at noon
    assert _rows(tmp_path, "select * from fleet_forecast") == []
