"""Ingestion layer: the raw API response, and the typed lake partition normalized from it."""

from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.contract import LAKE_SCHEMA
from pipelines.ingest import land_raw, publish_lake
from pipelines.lake import DataDir
from pipelines.partitions import resolve_key
from pipelines.redaction import scrubbed_errors
from pipelines.resources import LakeStore, VolumeApi, source_api
from pipelines.sources import DEFAULT, Source

LAKE_COLUMNS = dg.TableSchema(
    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in LAKE_SCHEMA.items()]
)


def build_ingestion_assets(
    partitions: dg.PartitionsDefinition, sources: tuple[Source, ...] = (DEFAULT,)
) -> list[dg.AssetsDefinition]:
    """The two ingestion assets over the given snapshot partitions (time windows, or
    (time, source) pairs when there are several sources)."""
    by_name = {source.name: source for source in sources}

    @dg.asset(
        name="raw_volume_snapshots",
        group_name="ingestion",
        partitions_def=partitions,
        kinds={"http", "json"},
        owners=["team:storage-capacity"],
        tags={"layer": "raw"},
        pool="volcap_ingest",
    )
    def raw_volume_snapshots(
        context: dg.AssetExecutionContext, volume_api: VolumeApi, lake: LakeStore
    ) -> dg.MaterializeResult:
        """The `GET /v1/volumes` response body exactly as received (zstd), with a sidecar
        recording URL (no secrets), status, `Date`, fetch time, byte count and checksum.

        Fetched only while the API's clock is inside the partition's window; the body is
        validated against the contract before anything is written. Immutable input for replay.
        """
        window, source = resolve_key(partitions, context.partition_key)
        layout = lake.layout.for_source(source)
        with scrubbed_errors():
            landed = land_raw(
                source_api(volume_api, by_name[source]),
                layout,
                window,
                max_quarantine_share=lake.max_quarantine_share,
                min_volume_share=lake.min_volume_share,
                volume_median_window=lake.volume_median_window,
            )
        for warning in landed.normalized.warnings:
            context.log.warning(warning)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(landed.raw_path)),
                "url": landed.fetch.url,
                "http_status": landed.fetch.status,
                "api_date": landed.fetch.date.isoformat() if landed.fetch.date else "missing",
                "fetched_at": landed.fetch.fetched_at.isoformat(),
                "bytes": landed.fetch.byte_count,
                "compressed_bytes": landed.raw_bytes,
                "sha256": landed.fetch.sha256,
                "attempts": landed.fetch.attempts,
                "volumes": landed.normalized.rows_in,
                "source": source,
                **_object_uri(layout, landed.raw_path),
            },
            data_version=dg.DataVersion(landed.fetch.sha256),
        )

    @dg.asset(
        name="volume_snapshots",
        group_name="ingestion",
        partitions_def=partitions,
        deps=[raw_volume_snapshots],
        kinds={"polars", "parquet"},
        owners=["team:storage-capacity"],
        tags={"layer": "lake"},
        pool="volcap_ingest",
        check_specs=[
            dg.AssetCheckSpec(
                "no_rows_quarantined",
                asset="volume_snapshots",
                description=(
                    "Every row of the snapshot passed validation. Warns when some were "
                    "quarantined (a snapshot over LakeStore.max_quarantine_share is refused "
                    "before this runs, so a check of that limit could never fail)."
                ),
            )
        ],
    )
    def volume_snapshots(
        context: dg.AssetExecutionContext, lake: LakeStore
    ) -> dg.MaterializeResult:
        """The lake: one row per volume per snapshot, typed Hive-partitioned Parquet under
        `lake/volume_snapshots/snapshot_date=YYYY-MM-DD/`, every row with its `source`. A
        rerun replaces the partition;
        materializing it alone replays the landed raw body."""
        window, source = resolve_key(partitions, context.partition_key)
        layout = lake.layout.for_source(source)
        with scrubbed_errors():
            published = publish_lake(
                layout,
                window.start,
                max_quarantine_share=lake.max_quarantine_share,
            )
        report: dict[str, Any] = dict(published.report)
        metadata: dict[str, Any] = {
            "path": dg.MetadataValue.path(str(published.path)),
            "dagster/row_count": published.rows,
            "bytes": published.file_bytes,
            "replayed_from_raw": published.replayed,
            "validation_path": str(report.get("validation_path", "unknown")),
            "source": source,
            "rows_quarantined": int(report.get("rows_quarantined", 0) or 0),
            "counts_by_status": dg.MetadataValue.json(report.get("counts_by_status") or {}),
            "fields_missing": dg.MetadataValue.json(report.get("fields_missing") or {}),
            "fields_unknown": dg.MetadataValue.json(report.get("fields_unknown") or {}),
            "unknown_statuses": dg.MetadataValue.json(report.get("unknown_statuses") or {}),
            "dagster/column_schema": LAKE_COLUMNS,
            **_object_uri(layout, published.path),
        }
        if published.quarantine_path:
            metadata["quarantine_path"] = dg.MetadataValue.path(str(published.quarantine_path))
        rows_in = int(report.get("rows_in", 0) or 0)
        quarantined = int(report.get("rows_quarantined", 0) or 0)
        share = quarantined / rows_in if rows_in else 0.0
        check = dg.AssetCheckResult(
            check_name="no_rows_quarantined",
            passed=quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows_in": rows_in,
                "rows_quarantined": quarantined,
                "share": share,
                "limit": lake.max_quarantine_share,
            },
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return [raw_volume_snapshots, volume_snapshots]


def _object_uri(layout: DataDir, path: Path) -> dict[str, Any]:
    """With an object-store data dir, where the published file lives in the bucket (`path` is
    its copy in the local cache)."""
    if layout.remote is None:
        return {}
    return {"object_uri": dg.MetadataValue.url(layout.remote.address(path))}
