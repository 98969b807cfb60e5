"""The lake's schema spelled for DuckDB, without polars: what a build needs of the contract
(importing polars costs a one-shot `volcap build` ~0.15 s)."""

from __future__ import annotations

#: The lake's schema (pipelines.contract.LAKE_SCHEMA) spelled for DuckDB (used by the warehouse's source view and the benches).
LAKE_DUCKDB_TYPES: dict[str, str] = {
    "source": "VARCHAR",
    "volume_id": "VARCHAR",
    "name": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "used_bytes": "BIGINT",
    "inode_count": "BIGINT",
    "mount_count": "INTEGER",
    "max_size_bytes": "BIGINT",
    "max_file_count": "BIGINT",
    "max_mounts": "INTEGER",
    "last_reconciled_at": "TIMESTAMPTZ",
    "status": "VARCHAR",
    "host_id": "VARCHAR",
    "snapshot_at": "TIMESTAMPTZ",
    "observed_at": "TIMESTAMPTZ",
}
