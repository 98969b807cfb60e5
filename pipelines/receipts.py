"""Forecast receipts where people look: `forecast_accuracy` as one line (the demo) and as a
table (the Dagster metadata of the `forecast_accuracy` asset)."""

from __future__ import annotations

from typing import Any

import duckdb

#: the bucket a one-line summary speaks of: the one operators act on
HEADLINE_HORIZON = "≤ 7 d"


def accuracy(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The published `forecast_accuracy`, all sources added up per method and horizon."""
    rows = con.execute(
        """
        select
            method,
            horizon,
            sum(forecasts) as forecasts,
            sum(scored) as scored,
            sum(mae_days * scored) / nullif(sum(scored) filter (where mae_days is not null), 0)
                as mae_days,
            avg(coverage_80) as coverage_80,
            avg(alert_precision) as alert_precision,
            avg(alert_recall) as alert_recall,
            avg(false_alarms_per_1000_volume_days) as false_alarms_per_1000_volume_days
        from forecast_accuracy
        group by all
        order by horizon, mae_days nulls last, method
        """
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]


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
    return f"Forecasts due {horizon}, mean absolute error: " + ", ".join(parts) + "."


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
