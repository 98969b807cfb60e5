"""The snapshot partitions: one time window per snapshot, hourly unless configured otherwise."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from pipelines.ingest import Window
from pipelines.settings import DEFAULT_CADENCE_MINUTES, PARTITIONS_START

SUPPORTED_CADENCES = (15, 20, 30, 60)
PARTITION_FMT = "%Y-%m-%d-%H:%M"


def snapshot_partitions(
    cadence_minutes: int = DEFAULT_CADENCE_MINUTES,
) -> dg.TimeWindowPartitionsDefinition:
    """Time windows of `cadence_minutes`, in UTC, including the window in progress.

    `end_offset=1` makes the current (still open) window a valid partition: the API only serves
    the present, so the schedule snapshots the window it is in, not the last closed one.
    """
    if cadence_minutes not in SUPPORTED_CADENCES:
        raise ValueError(
            f"cadence must be one of {SUPPORTED_CADENCES} minutes, got {cadence_minutes}"
        )
    cron = "0 * * * *" if cadence_minutes == 60 else f"*/{cadence_minutes} * * * *"
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron,
        start=PARTITIONS_START,
        fmt=PARTITION_FMT,
        timezone="UTC",
        end_offset=1,
    )


def window_for_key(partitions: dg.TimeWindowPartitionsDefinition, key: str) -> Window:
    """The window of a partition key (validated: an unknown key raises)."""
    tw = partitions.time_window_for_partition_key(key)
    return Window(start=tw.start, end=tw.end)


def key_for_instant(partitions: dg.TimeWindowPartitionsDefinition, instant: datetime) -> str:
    return partitions.get_partition_key_for_timestamp(instant.timestamp())
