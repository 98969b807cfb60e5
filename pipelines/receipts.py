"""Forecast receipts where people look: `forecast_accuracy` as one line (the demo), as a table
(the Dagster metadata of the backtest assets), as the verdict of the interval-coverage check,
and as the report's "How good are these forecasts" section."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import duckdb

from pipelines import charts, queries, settings

#: the bucket a one-line summary speaks of: the one operators act on
HEADLINE_HORIZON = "≤ 7 d"
#: the horizon buckets, nearest first (forecast_accuracy's `horizon`)
HORIZONS = ("≤ 7 d", "≤ 30 d", "> 30 d")
#: the method whose intervals are calibrated and checked
PRODUCTION_METHOD = "volcap"


def accuracy(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The published `forecast_accuracy`, all sources added up per method and horizon."""
    return queries.rows(con, queries.REPORT, "forecast_receipts")


def _figure(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def one_line(rows: list[dict[str, Any]], horizon: str = HEADLINE_HORIZON) -> str:
    """`Forecasts due within 7 days, mean error: naive_7d 2.3 d (41 scored), …`."""
    scored = [r for r in rows if r["horizon"] == horizon and r["scored"]]
    if not scored:
        return f"No forecast due {horizon} has come true or false yet (the backtest needs fills)."
    parts = [
        f"{r['method']} {_figure(r['mae_days'], '.1f')} d ({int(r['scored']):,} scored)"
        for r in scored
    ]
    line = f"Forecasts due {horizon}, mean absolute error: " + ", ".join(parts) + "."
    own = [r for r in rows if r["method"] == PRODUCTION_METHOD and r["intervals_scored"]]
    known = sum(int(r["intervals_scored"]) for r in own)
    if known:
        held = sum(r["coverage_80"] * r["intervals_scored"] for r in own) / known
        line += f" {PRODUCTION_METHOD}'s 80% interval held {held:.0%} of {known:,} known outcomes."
    return line


def markdown(rows: list[dict[str, Any]]) -> str:
    """Every method and horizon as a Markdown table."""
    lines = [
        "| horizon | method | forecasts | scored | MAE (days) | 80% coverage | precision | "
        "recall | false alarms / 1,000 volume-days |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['horizon']} | {r['method']} | {int(r['forecasts'] or 0):,} | "
            f"{int(r['scored'] or 0):,} | {_figure(r['mae_days'], '.2f')} | "
            f"{_figure(r['coverage_80'], '.0%')} | {_figure(r['alert_precision'], '.2f')} | "
            f"{_figure(r['alert_recall'], '.2f')} | "
            f"{_figure(r['false_alarms_per_1000_volume_days'], '.1f')} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Coverage:
    """The interval-coverage check's verdict: `passed` None when too few intervals are scored."""

    passed: bool | None
    metadata: dict[str, Any]


def coverage(
    rows: list[dict[str, Any]],
    band: tuple[float, float] = settings.INTERVAL_COVERAGE_BAND,
    min_scored: int = settings.INTERVAL_COVERAGE_MIN_SCORED,
) -> Coverage:
    """Whether volcap's calibrated 80% intervals held the truth within `band`, over all
    buckets and in each bucket with at least `min_scored` known outcomes (`accuracy` rows)."""
    own = [r for r in rows if r["method"] == PRODUCTION_METHOD and r["intervals_scored"]]
    scored = sum(int(r["intervals_scored"]) for r in own)
    low, high = band
    metadata: dict[str, Any] = {"band": f"{low:.0%}–{high:.0%}", "intervals_scored": scored}
    if scored < min_scored:
        metadata["skipped"] = (
            f"only {scored} calibrated intervals have a known outcome (needs {min_scored}): "
            "the lake is too young to judge them"
        )
        return Coverage(None, metadata)
    overall = sum(r["coverage_80"] * r["intervals_scored"] for r in own) / scored
    metadata["coverage_overall"] = round(overall, 3)
    judged = {"overall": overall}
    for r in own:
        key = f"coverage {r['horizon']}"
        if r["intervals_scored"] >= min_scored:
            judged[r["horizon"]] = r["coverage_80"]
            metadata[key] = round(r["coverage_80"], 3)
        else:
            metadata[key] = f"not judged: {int(r['intervals_scored'])} scored"
    outside = [name for name, value in judged.items() if not low <= value <= high]
    if outside:
        metadata["outside_band"] = ", ".join(outside)
    return Coverage(not outside, metadata)


#: the report's order of methods: the production forecast first, then the baselines
METHODS = (PRODUCTION_METHOD, "predict_linear_window", "naive_7d", "predict_linear_6h")


def _cell(value: float | None, fmt: str, suffix: str = "") -> str:
    return "—" if value is None else f"{format(value, fmt)}{suffix}"


def html_section(rows: list[dict[str, Any]]) -> str:
    """The report's "How good are these forecasts": each method's mean error per horizon
    bucket (a chart and a table), volcap's interval coverage, lead time and false alarms."""
    if not any(r["scored"] for r in rows):
        return (
            '<p id="receipts-empty">No forecast has come true or false yet: the backtest '
            "scores forecasts once volumes fill (see forecast_backtest).</p>"
        )
    by = {(r["method"], r["horizon"]): r for r in rows}
    methods = [m for m in METHODS if any((m, h) in by for h in HORIZONS)]
    methods += sorted({r["method"] for r in rows} - set(methods))
    chart = charts.grouped_bars(
        HORIZONS,
        {m: [by[(m, h)]["mae_days"] if (m, h) in by else None for h in HORIZONS] for m in methods},
        title="Mean absolute error of time to full, days, by predicted horizon",
        y_format=lambda v: f"{v:g} d",
        height=240,
    )
    head = (
        "<thead><tr><th>Horizon</th><th>Method</th><th>Scored</th><th>MAE</th>"
        "<th>Median APE</th><th>80% coverage</th><th>Precision</th><th>Recall</th>"
        "<th>Median lead</th><th>False alarms / 1,000 volume-days</th></tr></thead>"
    )
    body = []
    for h in HORIZONS:
        for m in methods:
            r = by.get((m, h))
            if r is None:
                continue
            own = ' class="own"' if m == PRODUCTION_METHOD else ""
            held_cell = (
                f"{_cell(r['coverage_80'], '.0%')} of {int(r['intervals_scored']):,}"
                if r.get("intervals_scored")
                else "—"
            )
            body.append(
                f"<tr{own}><td>{escape(h)}</td><td>{escape(m)}</td>"
                f"<td>{int(r['scored'] or 0):,} of {int(r['forecasts'] or 0):,}</td>"
                f"<td>{_cell(r['mae_days'], '.1f', ' d')}</td>"
                f"<td>{_cell(r['median_ape'], '.0%')}</td><td>{escape(held_cell)}</td>"
                f"<td>{_cell(r['alert_precision'], '.2f')}</td>"
                f"<td>{_cell(r['alert_recall'], '.2f')}</td>"
                f"<td>{_cell(r['median_lead_days'], '.1f', ' d')}</td>"
                f"<td>{_cell(r['false_alarms_per_1000_volume_days'], '.1f')}</td></tr>"
            )
    verdict = coverage(rows)
    if verdict.passed is None:
        held = f"Interval coverage is not judged yet: {verdict.metadata['skipped']}."
    else:
        band = verdict.metadata["band"]
        held = (
            f"{PRODUCTION_METHOD}'s calibrated 80% interval held the truth in "
            f"{verdict.metadata['coverage_overall']:.0%} of "
            f"{verdict.metadata['intervals_scored']:,} forecasts whose outcome is known "
            f"(target band {band}"
            + ("" if verdict.passed else f"; outside it: {verdict.metadata['outside_band']}")
            + ")."
        )
    return (
        '<p class="muted">Every day at 00:00 UTC each method forecasts every volume from the '
        "data known before then; the forecasts are scored against when usage really reached "
        "the quota (forecast_backtest, forecast_accuracy). Errors are measured on volumes that "
        "filled; the others are counted, not guessed. Alerts: flagged to fill within the "
        "horizon, right when the volume fills within it plus "
        f"{settings.BACKTEST_SLACK_DAYS:g} days.</p>"
        f'<p id="receipts-coverage">{escape(held)}</p>'
        + chart
        + f'<table id="receipts-table">{head}<tbody>{"".join(body)}</tbody></table>'
    )
