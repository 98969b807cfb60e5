-- Every change of a volume's limit (max_size_bytes, max_file_count or max_mounts) between two
-- consecutive snapshots of that volume; null means unlimited, so a change to or from null counts.
-- grain: (source, volume_id, limit_name, changed_at)
-- depends on: volume_snapshots, volume_daily (each volume's last limits before $since)
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: changed_at (an incremental build replaces the rows from $since on)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   limit_name: `max_size_bytes`, `max_file_count` or `max_mounts`
--   old_value: the limit before the change; null = unlimited
--   new_value: the limit after the change; null = unlimited
--   changed_at: the snapshot that first showed the new value
--   previous_snapshot_at: the snapshot before it
with

earlier as (
    -- a volume's last snapshot before $since is the end of its last day before it, so a change
    -- at the first snapshot on or after $since is compared with it
    select
        source,
        volume_id,
        max(last_snapshot_at) as snapshot_at,
        arg_max_null(max_size_bytes, last_snapshot_at) as max_size_bytes,
        arg_max_null(max_file_count, last_snapshot_at) as max_file_count,
        arg_max_null(max_mounts, last_snapshot_at) as max_mounts
    from volume_daily
    where day < $since
    group by source, volume_id
),

snapshots as (
    select source, volume_id, snapshot_at, max_size_bytes, max_file_count, max_mounts
    from volume_snapshots
    where snapshot_at >= $since
    union all
    select source, volume_id, snapshot_at, max_size_bytes, max_file_count, max_mounts
    from earlier
),

compared as (
    select
        source,
        volume_id,
        snapshot_at,
        lag(snapshot_at) over w as previous_snapshot_at,
        max_size_bytes,
        lag(max_size_bytes) over w as previous_max_size_bytes,
        max_file_count,
        lag(max_file_count) over w as previous_max_file_count,
        cast(max_mounts as bigint) as max_mounts,
        cast(lag(max_mounts) over w as bigint) as previous_max_mounts
    from snapshots
    window w as (partition by source, volume_id order by snapshot_at)
),

changed as (
    select * from compared
    where previous_snapshot_at is not null
        and snapshot_at >= $since
        and (
            max_size_bytes is distinct from previous_max_size_bytes
            or max_file_count is distinct from previous_max_file_count
            or max_mounts is distinct from previous_max_mounts
        )
),

events as (
    select source, volume_id, 'max_size_bytes' as limit_name, previous_max_size_bytes as old_value,
        max_size_bytes as new_value, snapshot_at as changed_at, previous_snapshot_at
    from changed where max_size_bytes is distinct from previous_max_size_bytes
    union all
    select source, volume_id, 'max_file_count', previous_max_file_count,
        max_file_count, snapshot_at, previous_snapshot_at
    from changed where max_file_count is distinct from previous_max_file_count
    union all
    select source, volume_id, 'max_mounts', previous_max_mounts,
        max_mounts, snapshot_at, previous_snapshot_at
    from changed where max_mounts is distinct from previous_max_mounts
),

final as (
    select * from events
)

select * from final
