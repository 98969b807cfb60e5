-- Every change of a volume's limit (max_size_bytes, max_file_count or max_mounts) between two
-- consecutive snapshots of that volume; null means unlimited, so a change to or from null counts.
-- grain: (volume_id, limit_name, changed_at)
-- depends on: volume_snapshots
-- parameters: none
with

snapshots as (
    select volume_id, snapshot_at, max_size_bytes, max_file_count, max_mounts
    from volume_snapshots
),

compared as (
    select
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
    window w as (partition by volume_id order by snapshot_at)
),

changed as (
    select * from compared
    where previous_snapshot_at is not null
        and (
            max_size_bytes is distinct from previous_max_size_bytes
            or max_file_count is distinct from previous_max_file_count
            or max_mounts is distinct from previous_max_mounts
        )
),

events as (
    select volume_id, 'max_size_bytes' as limit_name, previous_max_size_bytes as old_value,
        max_size_bytes as new_value, snapshot_at as changed_at, previous_snapshot_at
    from changed where max_size_bytes is distinct from previous_max_size_bytes
    union all
    select volume_id, 'max_file_count', previous_max_file_count,
        max_file_count, snapshot_at, previous_snapshot_at
    from changed where max_file_count is distinct from previous_max_file_count
    union all
    select volume_id, 'max_mounts', previous_max_mounts,
        max_mounts, snapshot_at, previous_snapshot_at
    from changed where max_mounts is distinct from previous_max_mounts
),

final as (
    select * from events
)

select * from final
