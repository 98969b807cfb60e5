"""The snapshot partitions: one time window per snapshot, hourly unless configured otherwise;
with several sources, one partition per (time window, source)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from pipelines.config import SUPPORTED_CADENCES
from pipelines.ingest import Window
from pipelines.settings import DEFAULT_CADENCE_MINUTES, PARTITIONS_START
from pipelines.sources import DEFAULT_SOURCE, keyed_by_source

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


def fleet_partitions(
    time_windows: dg.TimeWindowPartitionsDefinition, sources: Sequence[str]
) -> dg.PartitionsDefinition:
    """The time windows alone for the default source (keys as always, e.g. 2026-11-27-04:00);
    for several sources, (time, source) pairs, so each source's snapshot of a window is its
    own run that succeeds or fails on its own."""
    if not keyed_by_source(sources):
        return time_windows
    return dg.MultiPartitionsDefinition(
        {"time": time_windows, "source": dg.StaticPartitionsDefinition(list(sources))}
    )


def time_windows_of(partitions: dg.PartitionsDefinition) -> dg.TimeWindowPartitionsDefinition:
    """The time dimension of either shape."""
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        partitions = partitions.get_partitions_def_for_dimension("time")
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    return partitions


def resolve_key(partitions: dg.PartitionsDefinition, key: str) -> tuple[Window, str]:
    """The (window, source) of a run's partition key, for either shape (validated: an unknown
    key or source raises)."""
    if not isinstance(partitions, dg.MultiPartitionsDefinition):
        return window_for_key(time_windows_of(partitions), key), DEFAULT_SOURCE
    dimensions = partitions.get_partition_key_from_str(str(key)).keys_by_dimension
    source = dimensions["source"]
    if source not in partitions.get_partitions_def_for_dimension("source").get_partition_keys():
        raise ValueError(f"unknown source {source!r} in partition key {key!r}")
    return window_for_key(time_windows_of(partitions), dimensions["time"]), source


def key_for(
    partitions: dg.PartitionsDefinition, instant: datetime, source: str = DEFAULT_SOURCE
) -> str:
    """The partition key of `source`'s snapshot of the window containing `instant`."""
    time_key = key_for_instant(time_windows_of(partitions), instant)
    if not isinstance(partitions, dg.MultiPartitionsDefinition):
        return time_key
    return dg.MultiPartitionKey({"time": time_key, "source": source})
