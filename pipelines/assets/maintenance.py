"""Maintenance: compact each closed day of the lake into one sorted file."""

import dagster as dg

from pipelines.compaction import compact_lake
from pipelines.resources import LakeStore


@dg.asset(
    name="compact_lake",
    group_name="maintenance",
    deps=[dg.AssetKey("volume_snapshots")],
    kinds={"duckdb", "parquet"},
    owners=["team:storage-capacity"],
    tags={"layer": "lake"},
    pool="volcap_ingest",
)
def compact_lake_asset(lake: LakeStore) -> dg.MaterializeResult:
    """Rewrites every closed day's snapshot files as one `day-YYYY-MM-DD.parquet` sorted by
    volume and time (staged, renamed in, then the hourly files removed; idempotent). Builds stay
    exact at every instant: the warehouse deduplicates files of a day that may overlap."""
    done = compact_lake(lake.layout)
    return dg.MaterializeResult(
        metadata={
            "days_compacted": len(done),
            "files_removed": sum(c.files_in - 1 for c in done),
            "bytes_before": sum(c.bytes_in for c in done),
            "bytes_after": sum(c.bytes_out for c in done),
        }
    )
