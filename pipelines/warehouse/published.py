"""Reading the published warehouse: a read-only connection, the most urgent volumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pipelines.lake import DataDir
from pipelines.warehouse.errors import BuildError


def connect_published(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse (what BI tools and checks use)."""
    path = DataDir(Path(data_dir)).warehouse
    if not path.exists():
        raise BuildError(f"no warehouse at {path}: run a build first")
    return duckdb.connect(str(path), read_only=True)


def top_at_risk(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[dict[str, Any]]:
    """The most urgent volumes from volume_risk, in its `risk_rank` (already full, then by how
    soon they may fill)."""
    cursor = con.execute(
        """
        select source, volume_id, name, binding_resource, utilization, days_to_full, full_at,
            state, risk
        from volume_risk
        where risk <> 'ok'
        order by risk_rank
        limit $limit
        """,
        {"limit": limit},
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
