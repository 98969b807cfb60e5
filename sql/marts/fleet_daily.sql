-- One row per source (fleet) and UTC day: the fleet at its day's last snapshot. Volumes by status, total usage,
-- total bounded quota and its utilization, unlimited volumes. host_id is deprecated and not
-- identity, so hosts appear only as a diagnostic count.
-- grain: (source, day)
-- depends on: volume_daily
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: day (an incremental build replaces the rows from $since on)
-- columns:
--   source: the fleet
--   day: the UTC day
--   snapshot_at: the day's last snapshot of the source, the one the row describes
--   volumes: volumes in that snapshot
--   volumes_available: volumes with status `available`
--   volumes_attached: volumes with status `attached`
--   volumes_degraded: volumes with status `degraded`
--   volumes_error: volumes with status `error`
--   volumes_other_status: volumes with any other status
--   used_bytes: total bytes used
--   inode_count: total inodes used
--   bounded_quota_bytes: total byte quota of the volumes that have one
--   bounded_used_bytes: bytes used by the volumes that have a byte quota
--   bounded_utilization: bounded_used_bytes / bounded_quota_bytes
--   unlimited_volumes: volumes without a byte quota
--   hosts_diagnostic: distinct host_id values (diagnostic only: deprecated, not identity)
with

volume_days as (
    select * from volume_daily
    where day >= $since
),

day_ends as (
    select source, day, max(last_snapshot_at) as snapshot_at
    from volume_days
    group by source, day
),

end_of_day as (
    select volume_days.*, day_ends.snapshot_at
    from volume_days
    inner join day_ends
        on volume_days.source = day_ends.source
        and volume_days.day = day_ends.day
        and volume_days.last_snapshot_at = day_ends.snapshot_at
),

final as (
    select
        source,
        day,
        any_value(snapshot_at) as snapshot_at,
        count(*) as volumes,
        count(*) filter (where status = 'available') as volumes_available,
        count(*) filter (where status = 'attached') as volumes_attached,
        count(*) filter (where status = 'degraded') as volumes_degraded,
        count(*) filter (where status = 'error') as volumes_error,
        count(*) filter (
            where status not in ('available', 'attached', 'degraded', 'error')
        ) as volumes_other_status,
        cast(sum(used_bytes_last) as bigint) as used_bytes,
        cast(sum(inode_count_last) as bigint) as inode_count,
        cast(sum(max_size_bytes) as bigint) as bounded_quota_bytes,
        cast(sum(used_bytes_last) filter (where max_size_bytes is not null) as bigint)
            as bounded_used_bytes,
        sum(used_bytes_last) filter (where max_size_bytes is not null)
            / nullif(sum(max_size_bytes), 0) as bounded_utilization,
        count(*) filter (where max_size_bytes is null) as unlimited_volumes,
        count(distinct host_id) as hosts_diagnostic
    from end_of_day
    group by source, day
)

select * from final
