"""The upstream contract (api/volumes.openapi.yaml, our copy) and the lake's explicit schema."""

from __future__ import annotations

from datetime import datetime

import polars as pl

# re-exported: the lake's DuckDB types live apart so a build need not import polars
from pipelines.lake_types import LAKE_DUCKDB_TYPES as LAKE_DUCKDB_TYPES

#: Every field the provider documents, in the order the contract lists them.
API_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "host_id",
    "used_bytes",
    "inode_count",
    "mount_count",
    "max_size_bytes",
    "max_file_count",
    "max_mounts",
    "last_reconciled_at",
    "status",
)

#: Present on every volume; `null` is not allowed.
REQUIRED_NON_NULL: tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "used_bytes",
    "inode_count",
    "mount_count",
    "status",
)
#: Required by the contract but nullable (null = unlimited / never reconciled).
REQUIRED_NULLABLE: tuple[str, ...] = (
    "max_size_bytes",
    "max_file_count",
    "max_mounts",
    "last_reconciled_at",
)
#: Deprecated diagnostic, present only on a few legacy volumes.
OPTIONAL: tuple[str, ...] = ("host_id",)

STATUSES: tuple[str, ...] = ("available", "attached", "degraded", "error")

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

UTC_US = pl.Datetime("us", "UTC")

#: The contract's `date-time` (RFC 3339): a date, 'T', a time, an optional fraction and a
#: mandatory offset. Both validation paths check timestamps with it (DuckDB regexp syntax).
RFC3339_PATTERN = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
#: Columns the pipeline adds to the API's fields (not read from the body).
ADDED_COLUMNS: tuple[str, ...] = ("source", "snapshot_at", "observed_at")

#: The lake's schema, declared once: never inferred, so an all-null column keeps its type.
#: The warehouse's `volume_snapshots` has exactly these columns, in this order.
LAKE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "volume_id": pl.String(),
    "name": pl.String(),
    "created_at": UTC_US,
    "used_bytes": pl.Int64(),
    "inode_count": pl.Int64(),
    "mount_count": pl.Int32(),
    "max_size_bytes": pl.Int64(),
    "max_file_count": pl.Int64(),
    "max_mounts": pl.Int32(),
    "last_reconciled_at": UTC_US,
    "status": pl.String(),
    "host_id": pl.String(),
    "snapshot_at": UTC_US,
    "observed_at": UTC_US,
}


def to_lake(
    frame: pl.DataFrame, *, source: str, snapshot_at: datetime, observed_at: datetime
) -> pl.DataFrame:
    """Validated API rows (the contract's field names) as lake rows: `id` becomes
    `volume_id`, the pipeline's columns are added, every column cast to the lake's type."""
    return frame.select(
        pl.lit(source).alias("source"),
        pl.col("id").alias("volume_id"),
        *[pl.col(c) for c in LAKE_SCHEMA if c not in ("volume_id", *ADDED_COLUMNS)],
        pl.lit(snapshot_at).alias("snapshot_at"),
        pl.lit(observed_at).alias("observed_at"),
    ).cast(LAKE_SCHEMA)  # type: ignore[arg-type]
