"""Where the warehouse lives under the data dir: the published file, marts and lake links."""

from __future__ import annotations

from pathlib import Path

from pipelines.lake import LAKE_TABLE

WAREHOUSE_FILE = "warehouse.duckdb"


MARTS_DIR = "marts"


#: Under the data dir: one folder per build of hard links to the lake files it read
#: (`<token>/current|legacy/snapshot_date=YYYY-MM-DD/`), which its `lake_volume_snapshots`
#: view reads. A folder outlives its build by LAKE_LINKS_GRACE, for readers still holding it.
LAKE_LINKS_DIR = "warehouse.lake"


def warehouse_path(data_dir: Path) -> Path:
    """Where the published warehouse lives."""
    return Path(data_dir) / WAREHOUSE_FILE


def lake_dir(data_dir: Path) -> Path:
    """The lake table's root (Hive-partitioned by snapshot_date)."""
    return Path(data_dir) / "lake" / LAKE_TABLE


def lake_files(data_dir: Path) -> list[Path]:
    """Snapshot files currently in the lake."""
    return sorted(lake_dir(data_dir).glob("snapshot_date=*/*.parquet"))


def remove(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            remove(child)
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
