-- One row per volume per UTC day: end-of-day and peak usage, quotas and status at the end of
-- the day, utilization ratios (end-of-day usage over end-of-day quota; null when unlimited).
-- grain: (source, volume_id, day)
-- depends on: volume_snapshots
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: day (an incremental build replaces the rows from $since on)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   day: the UTC day
--   first_snapshot_at: the day's first snapshot of the volume
--   last_snapshot_at: the day's last snapshot of the volume
--   snapshot_count: snapshots of the volume that day
--   used_bytes_last: bytes used at the end of the day
--   used_bytes_max: peak bytes used that day
--   inode_count_last: inodes used at the end of the day
--   inode_count_max: peak inodes used that day
--   mount_count_last: mounts at the end of the day
--   mount_count_max: peak mounts that day
--   max_size_bytes: byte quota at the end of the day; null = unlimited
--   max_file_count: file-count quota at the end of the day; null = unlimited
--   max_mounts: mount limit at the end of the day; null = unlimited
--   status: status at the end of the day
--   host_id: host_id at the end of the day (deprecated diagnostic)
--   bytes_utilization: used_bytes_last / max_size_bytes; null when unlimited
--   inodes_utilization: inode_count_last / max_file_count; null when unlimited
--   mounts_utilization: mount_count_last / max_mounts; null when unlimited
with

snapshots as (
    -- the UTC day without a time zone conversion (ICU's cast of a timestamptz to a date costs
    -- ~100 ns a row: seconds over the history)
    select *, cast(make_timestamp(epoch_us(snapshot_at)) as date) as day
    from volume_snapshots
    where snapshot_at >= $since
),

daily as (
    select
        source,
        volume_id,
        day,
        min(snapshot_at) as first_snapshot_at,
        max(snapshot_at) as last_snapshot_at,
        count(*) as snapshot_count,
        arg_max(used_bytes, snapshot_at) as used_bytes_last,
        max(used_bytes) as used_bytes_max,
        arg_max(inode_count, snapshot_at) as inode_count_last,
        max(inode_count) as inode_count_max,
        arg_max(mount_count, snapshot_at) as mount_count_last,
        max(mount_count) as mount_count_max,
        -- null quotas mean unlimited, so the end-of-day value must keep nulls
        arg_max_null(max_size_bytes, snapshot_at) as max_size_bytes,
        arg_max_null(max_file_count, snapshot_at) as max_file_count,
        arg_max_null(max_mounts, snapshot_at) as max_mounts,
        arg_max_null(status, snapshot_at) as status,
        arg_max_null(host_id, snapshot_at) as host_id
    from snapshots
    group by source, volume_id, day
),

final as (
    select
        *,
        used_bytes_last / nullif(max_size_bytes, 0) as bytes_utilization,
        inode_count_last / nullif(max_file_count, 0) as inodes_utilization,
        mount_count_last / nullif(max_mounts, 0) as mounts_utilization
    from daily
)

select * from final
