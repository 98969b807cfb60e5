"""Warehouse assets: one Dagster asset per SQL model, built together, plus data-quality checks."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at runtime.

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from pipelines import queries
from pipelines import warehouse as engine
from pipelines.models import models
from pipelines.receipts import accuracy
from pipelines.receipts import coverage as interval_coverage_of
from pipelines.receipts import markdown as receipts_table
from pipelines.resources import WarehouseResource

#: Warehouse tables sit under this key prefix: the lake asset is also called volume_snapshots.
KEY_PREFIX = "warehouse"
#: The ingestion asset the first staging model reads.
LAKE_ASSET = dg.AssetKey("volume_snapshots")


class BuildConfig(dg.Config):
    """Run config of a warehouse build."""

    #: rebuild every model from the whole lake instead of only the days that changed
    full: bool = False


def model_key(name: str) -> dg.AssetKey:
    """The asset key of a warehouse model."""
    return dg.AssetKey([KEY_PREFIX, name])


def _specs() -> list[dg.AssetSpec]:
    specs = []
    for model in models().values():
        deps = [model_key(dep) for dep in model.deps]
        if "lake_volume_snapshots" in model.sources:
            deps.append(LAKE_ASSET)
        specs.append(
            dg.AssetSpec(
                key=model_key(model.name),
                deps=deps,
                description=model.description,
                group_name=model.layer,
                kinds={"duckdb", "sql"},
                owners=["team:storage-capacity"],
                tags={"layer": model.layer},
            )
        )
    return specs


def _risk_preview(rows: list[dict]) -> str:
    if not rows:
        return "No volume at risk."
    lines = [
        "| volume | resource | utilization | days to full | risk |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        utilization = "" if row["utilization"] is None else f"{row['utilization']:.0%}"
        days = "" if row["days_to_full"] is None else f"{row['days_to_full']:.1f}"
        lines.append(
            f"| {row['name']} (`{row['volume_id']}`) | {row['binding_resource']} "
            f"| {utilization} | {days} | {row['risk']} |"
        )
    return "\n".join(lines)


@dg.multi_asset(specs=_specs(), can_subset=False, name="warehouse_models")
def warehouse_models(
    context: dg.AssetExecutionContext, config: BuildConfig, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Build every SQL model into a new warehouse file and swap it in atomically (only the days
    that changed in the lake, unless the previous build is unusable or `full` is set)."""
    result = engine.build_warehouse(
        warehouse.path, full=config.full, remote=warehouse.layout.remote
    )
    context.log.info(result.summary())
    with engine.connect_published(warehouse.path) as con:
        preview = _risk_preview(queries.rows(con, queries.REPORT, "top_at_risk", limit=10))
        receipts = receipts_table(accuracy(con))
    for name in models():
        metadata: dict[str, Any] = {
            "dagster/row_count": dg.MetadataValue.int(result.rows[name]),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(column, kind) for column, kind in result.columns[name]]
            ),
            "path": dg.MetadataValue.path(str(result.path)),
            "as_of": dg.MetadataValue.timestamp(result.as_of),
            "build_mode": dg.MetadataValue.text(result.mode),
        }
        if name in result.parquet:
            metadata["parquet"] = dg.MetadataValue.path(str(result.parquet[name]))
        if name == "volume_risk":
            metadata["critical"] = dg.MetadataValue.int(result.critical)
            metadata["warning"] = dg.MetadataValue.int(result.warning)
            metadata["top_at_risk"] = dg.MetadataValue.md(preview)
        if name in ("forecast_backtest", "forecast_accuracy"):
            metadata["accuracy"] = dg.MetadataValue.md(receipts)
        yield dg.MaterializeResult(asset_key=model_key(name), metadata=metadata)


def _result(outcome: engine.CheckOutcome, *, warn: bool = False) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR,
        metadata=outcome.metadata,
    )


def _run(
    resource: WarehouseResource, check: Callable[..., engine.CheckOutcome], **kwargs: object
) -> engine.CheckOutcome:
    with engine.connect_published(resource.path) as con:
        return check(con, **kwargs)


@dg.asset_check(asset=model_key("volume_snapshots"))
def unique_volume_snapshots(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Each (volume_id, snapshot_at) appears once in volume_snapshots."""
    return _result(_run(warehouse, engine.check_unique_snapshots))


@dg.asset_check(asset=model_key("volume_snapshots"))
def no_negative_counts(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """No used_bytes, inode_count, mount_count or limit is negative."""
    return _result(_run(warehouse, engine.check_non_negative))


@dg.asset_check(asset=model_key("volume_snapshots"))
def latest_snapshot_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The latest snapshot is younger than settings.FRESHNESS_MAX_AGE."""
    return _result(_run(warehouse, engine.check_fresh))


@dg.asset_check(asset=model_key("volume_snapshots"))
def no_missing_snapshots(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Every snapshot expected at the configured cadence in the last day is present."""
    return _result(
        _run(
            warehouse,
            engine.check_no_missing_snapshots,
            cadence_minutes=warehouse.cadence_minutes,
        )
    )


@dg.asset_check(asset=model_key("volume_snapshots"))
def row_count_stable(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """No snapshot in the last day has over 15% fewer rows than the one before (warns)."""
    return _result(_run(warehouse, engine.check_row_count_stable), warn=True)


@dg.asset_check(asset=model_key("quota_forecast"))
def forecast_sane(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """days_to_full is never negative and low <= days_to_full <= high."""
    return _result(_run(warehouse, engine.check_forecast_sanity))


@dg.asset_check(asset=model_key("forecast_accuracy"))
def interval_coverage(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """volcap's calibrated 80% interval held the truth 75–85% of the time on the backtest,
    overall and per horizon bucket (skipped while too few outcomes are known). Warns: a
    miscalibrated interval is a forecast to improve, not data to stop; the forecasts stay
    published and the figures show where."""
    with engine.connect_published(warehouse.path) as con:
        verdict = interval_coverage_of(accuracy(con))
    return dg.AssetCheckResult(
        passed=verdict.passed is not False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=verdict.metadata,
    )


MART_ASSETS: list[dg.AssetsDefinition] = [warehouse_models]
MART_CHECKS: list[dg.AssetChecksDefinition] = [
    unique_volume_snapshots,
    no_negative_counts,
    latest_snapshot_fresh,
    no_missing_snapshots,
    row_count_stable,
    forecast_sane,
    interval_coverage,
]
