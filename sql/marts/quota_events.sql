-- Every change of a volume's limit (max_size_bytes, max_file_count or max_mounts) between two
-- consecutive snapshots of that volume; null means unlimited, so a change to or from null counts.
-- grain: (source, volume_id, limit_name, changed_at)
-- depends on: volume_snapshots, volume_daily (each volume's end-of-day limits)
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

last_days_before as (
    -- each volume's end-of-day limits on the day before $since
    select source, volume_id, last_snapshot_at as snapshot_at, max_size_bytes, max_file_count,
        max_mounts
    from volume_daily
    where day = cast($since as date) - 1
),

earlier as (
    -- a volume's last snapshot before $since is the end of its last day before it, so a change
    -- at the first snapshot on or after $since is compared with it; only the volumes seen from
    -- $since on need it, and most were seen the day before: the whole history is read only for
    -- the others (reading it for every volume grew every build with the lake's history)
    select * from last_days_before
    union all
    select
        source,
        volume_id,
        max(last_snapshot_at) as snapshot_at,
        arg_max_null(max_size_bytes, last_snapshot_at) as max_size_bytes,
        arg_max_null(max_file_count, last_snapshot_at) as max_file_count,
        arg_max_null(max_mounts, last_snapshot_at) as max_mounts
    from volume_daily
    semi join (
        select distinct source, volume_id from volume_daily as current
        where day >= $since
            and not exists (
                from last_days_before as found
                where found.source = current.source and found.volume_id = current.volume_id
            )
    ) as missing
        on volume_daily.source = missing.source and volume_daily.volume_id = missing.volume_id
    where day < $since
    group by source, volume_id
),

limit_days as (
    -- per volume and day from $since: whether a limit took two values that day. A volume's
    -- limits rarely change, so only the days where they do — within the day, or from the end of
    -- the day before — need their snapshots in order (sorting every snapshot was most of a full
    -- build's time here); volume_daily has each day's end-of-day limits
    select
        source,
        volume_id,
        -- the UTC day without a time zone conversion (ICU's, for every snapshot, cost seconds)
        cast(make_timestamp(epoch_us(snapshot_at)) as date) as day,
        min(max_size_bytes) is distinct from max(max_size_bytes)
            or count(max_size_bytes) not in (0, count(*))
            or min(max_file_count) is distinct from max(max_file_count)
            or count(max_file_count) not in (0, count(*))
            or min(max_mounts) is distinct from max(max_mounts)
            or count(max_mounts) not in (0, count(*)) as varies
    from volume_snapshots
    where snapshot_at >= $since
    group by all
),

days as (
    -- each volume's end-of-day limits from $since, after its last day before it
    select source, volume_id, day, last_snapshot_at, max_size_bytes, max_file_count, max_mounts
    from volume_daily
    where day >= $since
    union all
    select source, volume_id, cast(snapshot_at as date), snapshot_at, max_size_bytes,
        max_file_count, max_mounts
    from earlier
),

day_ends as (
    select
        days.source,
        days.volume_id,
        days.day,
        limit_days.varies,
        lag(days.last_snapshot_at) over w as previous_snapshot_at,
        days.max_size_bytes is distinct from lag(days.max_size_bytes) over w
            or days.max_file_count is distinct from lag(days.max_file_count) over w
            or days.max_mounts is distinct from lag(days.max_mounts) over w as differs,
        lag(days.max_size_bytes) over w as previous_max_size_bytes,
        lag(days.max_file_count) over w as previous_max_file_count,
        lag(days.max_mounts) over w as previous_max_mounts
    from days
    left join limit_days
        on days.source = limit_days.source
        and days.volume_id = limit_days.volume_id
        and days.day = limit_days.day
    window w as (partition by days.source, days.volume_id order by days.day)
),

changed_days as (
    select * from day_ends
    where day >= $since and (varies or (differs and previous_snapshot_at is not null))
),

snapshots as (
    select source, volume_id, snapshot_at, max_size_bytes, max_file_count, max_mounts
    from volume_snapshots
    semi join changed_days
        on volume_snapshots.source = changed_days.source
        and volume_snapshots.volume_id = changed_days.volume_id
        and cast(make_timestamp(epoch_us(volume_snapshots.snapshot_at)) as date) = changed_days.day
    where snapshot_at >= $since
    union
    -- each changed day's first snapshot is compared with the last one before it
    select source, volume_id, previous_snapshot_at, previous_max_size_bytes,
        previous_max_file_count, previous_max_mounts
    from changed_days
    where previous_snapshot_at is not null
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
