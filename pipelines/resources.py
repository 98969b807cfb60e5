"""Resources for everything external, built in one place from `VOLCAP_*` environment variables."""

from __future__ import annotations

import os

import dagster as dg

from pipelines.client import VolumeApi
from pipelines.lake import DataDir

DEFAULT_DATA_DIR = "./data"


class LakeStore(dg.ConfigurableResource):
    """The data dir: raw landing, lake, quarantine, warehouse and marts live under it."""

    data_dir: str = DEFAULT_DATA_DIR
    #: A snapshot with more than this share of rows quarantined fails.
    max_quarantine_share: float = 0.01

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
    }


def cadence_minutes() -> int:
    """Snapshot cadence from `VOLCAP_CADENCE_MINUTES` (default hourly)."""
    from pipelines.settings import DEFAULT_CADENCE_MINUTES

    return int(os.environ.get("VOLCAP_CADENCE_MINUTES") or DEFAULT_CADENCE_MINUTES)
