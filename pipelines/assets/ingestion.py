"""Ingestion layer: the raw API response, and the typed lake partition normalized from it."""

import dagster as dg

from pipelines.client import VolumeApi
from pipelines.contract import LAKE_SCHEMA
from pipelines.ingest import land_raw, publish_lake
from pipelines.partitions import snapshot_partitions, window_for_key
from pipelines.resources import LakeStore

LAKE_COLUMNS = dg.TableSchema(
    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in LAKE_SCHEMA.items()]
)

def build_ingestion_assets(partitions: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two ingestion assets over the given snapshot partitions."""

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
        window = window_for_key(partitions, context.partition_key)
        landed = land_raw(
            volume_api, lake.layout, window, max_quarantine_share=lake.max_quarantine_share
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
    )
    def volume_snapshots(
        context: dg.AssetExecutionContext, lake: LakeStore
    ) -> dg.MaterializeResult:
        """The lake: one row per volume per snapshot, typed Hive-partitioned Parquet under
        `lake/volume_snapshots/snapshot_date=YYYY-MM-DD/`. A rerun replaces the partition;
        materializing it alone replays the landed raw body."""
        window = window_for_key(partitions, context.partition_key)
        published = publish_lake(
            lake.layout, window.start, max_quarantine_share=lake.max_quarantine_share
        )
        report = published.report
        metadata: dict[str, object] = {
            "path": dg.MetadataValue.path(str(published.path)),
            "dagster/row_count": published.rows,
            "bytes": published.file_bytes,
            "replayed_from_raw": published.replayed,
            "rows_quarantined": int(report.get("rows_quarantined", 0) or 0),  # type: ignore[call-overload]
            "counts_by_status": dg.MetadataValue.json(report.get("counts_by_status") or {}),
            "fields_missing": dg.MetadataValue.json(report.get("fields_missing") or {}),
            "fields_unknown": dg.MetadataValue.json(report.get("fields_unknown") or {}),
            "unknown_statuses": dg.MetadataValue.json(report.get("unknown_statuses") or {}),
            "dagster/column_schema": LAKE_COLUMNS,
        }
        if published.quarantine_path:
            metadata["quarantine_path"] = dg.MetadataValue.path(str(published.quarantine_path))
        return dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]

    return [raw_volume_snapshots, volume_snapshots]
