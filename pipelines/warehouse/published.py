"""Reading the published warehouse: a read-only connection (queries: pipelines/queries.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.lake import DataDir
from pipelines.warehouse.errors import BuildError


def connect_published(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse (what BI tools and checks use)."""
    path = DataDir(Path(data_dir)).warehouse
    if not path.exists():
        raise BuildError(f"no warehouse at {path}: run a build first")
    return duckdb.connect(str(path), read_only=True)
