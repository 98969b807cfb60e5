-- One row per active volume: its binding resource (the one that fills first among bytes,
-- inodes and mounts), with that resource's days to full and risk, so a dashboard sorts one list.
-- Mounts are not forecast: mount pressure is the current mount_count / max_mounts, `full` at 100%.
-- grain: (source, volume_id)
-- depends on: quota_forecast, volumes
-- parameters: $as_of
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   name: display name
--   as_of: the build's as_of: the latest snapshot_at in the lake
--   binding_resource: `bytes`, `inodes` or `mounts`: the resource that fills first
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
--   mounts_utilization: mount_count / max_mounts (mount pressure, full at 100%)
with

forecasts as (
    select * from quota_forecast
),

active_volumes as (
    select * from volumes where is_active
),

mounts as (
    select
        source,
        volume_id,
        'mounts' as resource,
        cast(mount_count as bigint) as current,
        cast(max_mounts as bigint) as quota,
        mount_count / nullif(max_mounts, 0) as utilization,
        case when mount_count >= max_mounts then 0.0 end as days_to_full,
        case when mount_count >= max_mounts then $as_of end as full_at,
        case when mount_count >= max_mounts then 0.0 end as days_to_full_low,
        case when mount_count >= max_mounts then 0.0 end as days_to_full_high,
        case
            when max_mounts is null then 'unbounded'
            when mount_count >= max_mounts then 'full'
            else 'not_forecast'
        end as state,
        case when mount_count >= max_mounts then 'critical' else 'ok' end as risk
    from active_volumes
),

candidates as (
    select source, volume_id, resource, current, quota, utilization, days_to_full, full_at,
        days_to_full_low, days_to_full_high, state, risk
    from forecasts
    union all
    select * from mounts
),

ranked as (
    select
        *,
        row_number() over (
            partition by source, volume_id
            order by days_to_full asc nulls last, utilization desc nulls last, resource
        ) as rank
    from candidates
),

by_resource as (
    select
        source,
        volume_id,
        max(days_to_full) filter (where resource = 'bytes') as bytes_days_to_full,
        max(utilization) filter (where resource = 'bytes') as bytes_utilization,
        max(days_to_full) filter (where resource = 'inodes') as inodes_days_to_full,
        max(utilization) filter (where resource = 'inodes') as inodes_utilization,
        max(utilization) filter (where resource = 'mounts') as mounts_utilization
    from candidates
    group by source, volume_id
),

final as (
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
        by_resource.mounts_utilization
    from ranked
    inner join active_volumes
        on ranked.source = active_volumes.source
        and ranked.volume_id = active_volumes.volume_id
    inner join by_resource
        on ranked.source = by_resource.source
        and ranked.volume_id = by_resource.volume_id
    where ranked.rank = 1
)

select * from final
