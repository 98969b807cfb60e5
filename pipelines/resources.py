"""Resources for everything external, built in one place from `VOLCAP_*` environment variables."""

from __future__ import annotations

import os

import dagster as dg

from pipelines.client import VolumeApi
from pipelines.assets.marts import WarehouseResource
from pipelines.lake import DataDir

DEFAULT_DATA_DIR = "./data"


class LakeStore(dg.ConfigurableResource):
    """The data dir: raw landing, lake, quarantine, warehouse and marts live under it."""

    data_dir: str = DEFAULT_DATA_DIR
    #: A snapshot with more than this share of rows quarantined fails.
    max_quarantine_share: float = 0.01
    #: A snapshot with fewer volumes than this share of the median of the last
    #: `volume_median_window` landed snapshots fails (0 disables the rule; at least three
    #: earlier snapshots are needed before it applies).
    min_volume_share: float = 0.5
    volume_median_window: int = 24

    @property
    def layout(self) -> DataDir:
        return DataDir.at(self.data_dir)


def build_resources() -> dict[str, object]:
    """Every resource, configured from the environment (values resolve at run time, so the
    key never appears in run config, the UI or the event log)."""
    data_dir: str | dg.EnvVar = DEFAULT_DATA_DIR
    if os.environ.get("VOLCAP_DATA_DIR"):
        data_dir = dg.EnvVar("VOLCAP_DATA_DIR")
    return {
        "volume_api": VolumeApi(
            base_url=dg.EnvVar("VOLCAP_API_URL"), token=dg.EnvVar("VOLCAP_API_TOKEN")
        ),
        "lake": LakeStore(data_dir=data_dir),
        "warehouse": WarehouseResource(data_dir=data_dir, cadence_minutes=cadence_minutes()),
    }


def cadence_minutes() -> int:
    """Snapshot cadence from `VOLCAP_CADENCE_MINUTES` (default hourly)."""
    from pipelines.settings import DEFAULT_CADENCE_MINUTES

    return int(os.environ.get("VOLCAP_CADENCE_MINUTES") or DEFAULT_CADENCE_MINUTES)


def schedules_on_by_default() -> bool:
    """Schedules start RUNNING only where an API is configured: after `make demo` the simulator
    is gone, and `make dev` should not try to snapshot it every hour."""
    return bool(os.environ.get("VOLCAP_API_URL"))
