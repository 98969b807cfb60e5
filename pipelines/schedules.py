"""When things run: a snapshot every partition window, a build after each, a daily compaction."""

from typing import Any

import dagster as dg

from pipelines.partitions import key_for, key_for_instant, time_windows_of
from pipelines.resources import schedules_on_by_default


def build_schedules(
    snapshot_job: Any, partitions: dg.PartitionsDefinition, compaction_job: Any
) -> list[dg.ScheduleDefinition]:
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if schedules_on_by_default()
        else dg.DefaultScheduleStatus.STOPPED
    )
    windows = time_windows_of(partitions)
    sources = (
        partitions.get_partitions_def_for_dimension("source").get_partition_keys()
        if isinstance(partitions, dg.MultiPartitionsDefinition)
        else []
    )
    first = windows.time_window_for_partition_key(windows.get_first_partition_key())
    cadence = int((first.end - first.start).total_seconds() // 60)
    # Tick a few minutes into each window: the API serves the present, so the schedule snapshots
    # the window it is in (the partitions include the open window, see `snapshot_partitions`).
    offset = min(5, cadence // 5)
    minutes = ",".join(str(m + offset) for m in range(0, 60, cadence))

    @dg.schedule(
        name="snapshot_schedule",
        cron_schedule=f"{minutes} * * * *",
        job=snapshot_job,
        execution_timezone="UTC",
        default_status=status,
    )
    def snapshot_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        """Snapshot the volumes API once per window, for the window the tick falls in: one run
        per source, so a failing source does not hold the others back."""
        at = context.scheduled_execution_time
        if not sources:
            key = key_for_instant(windows, at)
            return [dg.RunRequest(run_key=key, partition_key=key)]
        return [
            dg.RunRequest(
                run_key=f"{key_for_instant(windows, at)}|{source}",
                partition_key=key_for(partitions, at, source),
                tags={"volcap/source": source},
            )
            for source in sources
        ]

    compaction_schedule = dg.ScheduleDefinition(
        name="compaction_schedule",
        cron_schedule="40 0 * * *",
        job=compaction_job,
        execution_timezone="UTC",
        default_status=status,
        description="Once a day, after midnight UTC: compact yesterday's hourly lake files.",
    )
    return [snapshot_schedule, compaction_schedule]


def build_sensors(build_job: Any) -> list[dg.SensorDefinition]:
    @dg.asset_sensor(
        name="build_after_snapshot",
        asset_key=dg.AssetKey("volume_snapshots"),
        job=build_job,
        # Like the schedules, on by default only where an API is configured: `make dev` after
        # the demo would otherwise launch a build at start-up, for the demo's last snapshot.
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if schedules_on_by_default()
            else dg.DefaultSensorStatus.STOPPED
        ),
        minimum_interval_seconds=60,
    )
    def build_after_snapshot(
        context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
    ) -> dg.RunRequest:
        """Rebuild the warehouse after each new lake partition."""
        # The sensor's cursor is the event's storage id: one build per new lake partition.
        return dg.RunRequest(run_key=context.cursor)

    return [build_after_snapshot]
