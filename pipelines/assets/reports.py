"""Reports layer: the self-contained HTML capacity report, built from the published warehouse."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

import base64

import dagster as dg

from pipelines import report
from pipelines.assets.marts import _risk_preview, model_key
from pipelines.resources import WarehouseResource
from pipelines.warehouse import PUBLIC_TABLES

#: The warehouse tables the report reads: every public table but the forecast history.
REPORT_INPUTS = tuple(t for t in PUBLIC_TABLES if t != "quota_forecast_history")


@dg.asset(
    name="capacity_report",
    group_name="reports",
    deps=[model_key(name) for name in REPORT_INPUTS],
    kinds={"html", "svg"},
    owners=["team:storage-capacity"],
    tags={"layer": "report"},
)
def capacity_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """`reports/capacity.html`: one self-contained offline page (inline SVG and CSS) with fleet
    capacity and its 30-day forecast, the ranked time-to-full list, growth leaders, recent quota
    events, status over time and data freshness. Reads the published warehouse read-only and
    replaces the file atomically."""
    written = report.write_report(warehouse.path, cadence_minutes=warehouse.cadence_minutes)
    remote = warehouse.layout.remote
    if remote is not None:
        for path in (written.chart_path, written.path):
            remote.put(path, path)
    data = written.data
    chart = base64.b64encode(written.chart_svg.encode()).decode()
    context.log.info(f"report written to {written.path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(written.path)),
            "bytes": dg.MetadataValue.int(written.bytes),
            "as_of": dg.MetadataValue.timestamp(data.as_of),
            "critical": dg.MetadataValue.int(data.risk_counts.get("critical", 0)),
            "warning": dg.MetadataValue.int(data.risk_counts.get("warning", 0)),
            "missing_snapshots": dg.MetadataValue.int(len(data.missing)),
            "no_volumes_yet": dg.MetadataValue.bool(data.no_volumes_yet),
            "fleet_capacity_chart": dg.MetadataValue.md(
                f"![Fleet capacity with a 30-day forecast](data:image/svg+xml;base64,{chart})"
            ),
            "fleet_capacity_chart_path": dg.MetadataValue.path(str(written.chart_path)),
            "top_at_risk": dg.MetadataValue.md(_risk_preview(data.at_risk[:10])),
        }
    )


REPORT_ASSETS: list[dg.AssetsDefinition] = [capacity_report]
