-- One row per active volume: its binding resource (whichever of bytes and inodes fills first),
-- with that resource's days to full and risk, and `risk_rank`, the one ordering every at-risk
-- list uses: volumes already full first (fullest first), then by how soon they may fill
-- (days_to_full_low), then the rest.
-- Mounts are no time-to-full risk: `mount_count = max_mounts` is the normal state of an attached
-- single-mount volume. Mount pressure (mount_count / max_mounts) is a signal of its own.
-- grain: (source, volume_id)
-- depends on: quota_forecast, volumes
-- parameters: $as_of
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   name: display name
--   as_of: the build's as_of: the latest snapshot_at in the lake
--   binding_resource: `bytes` or `inodes`, whichever fills first (mounts are no time-to-full
--     risk)
--   current: usage of the binding resource
--   quota: quota of the binding resource; null = unlimited
--   utilization: current / quota
--   days_to_full: days until the binding resource is full (as in quota_forecast)
--   full_at: as_of + days_to_full
--   days_to_full_low: earliest fill in the 80% interval
--   days_to_full_high: latest fill in the 80% interval
--   state: state of the binding resource, as in quota_forecast
--   risk: `critical`, `warning` or `ok`, as in quota_forecast
--   bytes_days_to_full: days to full for bytes
--   bytes_utilization: bytes used / byte quota
--   inodes_days_to_full: days to full for inodes
--   inodes_utilization: inodes used / file-count quota
--   mount_count: mounts now
--   max_mounts: the mount limit; null = unlimited
--   mount_pressure: mount_count / max_mounts: at 1 the volume takes no more mounts, normal for
--     an attached single-mount volume, so a signal of its own, never a risk
--   risk_rank: the one at-risk ordering (report, demo, Dagster metadata): volumes already full
--     first (fullest first), then by days_to_full_low, then days_to_full, then the rest
with

forecasts as (
    select * from quota_forecast
),

active_volumes as (
    select * from volumes where is_active
),

ranked as (
    select
        *,
        row_number() over (
            partition by source, volume_id
            order by days_to_full asc nulls last, utilization desc nulls last, resource
        ) as rank
    from forecasts
),

by_resource as (
    select
        source,
        volume_id,
        max(days_to_full) filter (where resource = 'bytes') as bytes_days_to_full,
        max(utilization) filter (where resource = 'bytes') as bytes_utilization,
        max(days_to_full) filter (where resource = 'inodes') as inodes_days_to_full,
        max(utilization) filter (where resource = 'inodes') as inodes_utilization
    from forecasts
    group by source, volume_id
),

joined as (
    select
        ranked.source,
        ranked.volume_id,
        active_volumes.name,
        $as_of as as_of,
        ranked.resource as binding_resource,
        ranked.current,
        ranked.quota,
        ranked.utilization,
        ranked.days_to_full,
        ranked.full_at,
        ranked.days_to_full_low,
        ranked.days_to_full_high,
        ranked.state,
        ranked.risk,
        by_resource.bytes_days_to_full,
        by_resource.bytes_utilization,
        by_resource.inodes_days_to_full,
        by_resource.inodes_utilization,
        active_volumes.mount_count,
        active_volumes.max_mounts,
        active_volumes.mount_count / nullif(active_volumes.max_mounts, 0) as mount_pressure
    from ranked
    inner join active_volumes
        on ranked.source = active_volumes.source
        and ranked.volume_id = active_volumes.volume_id
    inner join by_resource
        on ranked.source = by_resource.source
        and ranked.volume_id = by_resource.volume_id
    where ranked.rank = 1
),

final as (
    select
        *,
        row_number() over (
            order by
                case when state = 'full' then 0 when risk <> 'ok' then 1 else 2 end,
                case when state = 'full' then -utilization end nulls last,
                days_to_full_low nulls last,
                days_to_full nulls last,
                utilization desc nulls last,
                source,
                volume_id
        ) as risk_rank
    from joined
)

select * from final
