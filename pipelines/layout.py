"""Where the data dir is: the configured path, or the local working copy of an object-store URL.

Imports nothing heavy (no Dagster), so the CLI can resolve it before deciding to load Dagster.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import config, objectstore
from pipelines.lake import DataDir


def resolve_data_dir(configured: str = "") -> Path:
    """The local data dir: the configured one, else `$VOLCAP_DATA_DIR` *at run time*, else
    ./data; for an object-store URL (`s3://bucket/prefix`), its local working copy.

    Resolved when a run uses it, not when the code location loads: a CLI, a test or the demo may
    set VOLCAP_DATA_DIR after `pipelines.definitions` was imported.
    """
    value = configured or config.data_dir()
    return objectstore.cache_dir(value) if objectstore.is_remote(value) else Path(value)


def resolve_layout(configured: str = "") -> DataDir:
    """The data dir's layout, with its object-store mirror when the data dir is a URL."""
    value = configured or config.data_dir()
    root = resolve_data_dir(value)
    remote = (
        objectstore.Remote.open(value, root.resolve()) if objectstore.is_remote(value) else None
    )
    return DataDir.at(root, remote=remote)
