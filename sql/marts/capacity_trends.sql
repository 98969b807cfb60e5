-- Growth per day over the last 7 and 30 days (least-squares slope), bytes and inodes: one row
-- per active volume (scope 'volume', from its reconciliations) and one per source for its fleet
-- (scope 'fleet', volume_id null, from fleet_daily's end-of-day totals).
-- grain: (scope, source, volume_id)
-- depends on: volume_observations, volumes, fleet_daily
-- parameters: $as_of
-- columns:
--   scope: `volume` (one row per active volume) or `fleet` (one row per source, from
--     fleet_daily)
--   source: the fleet
--   volume_id: the volume; null for a fleet row
--   bytes_growth_per_day_7d: bytes per day, least-squares slope over the last 7 days
--   bytes_growth_per_day_30d: bytes per day, least-squares slope over the last 30 days
--   inodes_growth_per_day_7d: inodes per day, least-squares slope over the last 7 days
--   inodes_growth_per_day_30d: inodes per day, least-squares slope over the last 30 days
--   observations_30d: points behind the 30-day slope
--   as_of: the build's as_of: the latest snapshot_at in the lake
with

observations as (
    select
        volume_observations.*,
        (epoch(reconciled_at) - epoch($as_of)) / 86400.0 as x
    from volume_observations
    where reconciled_at > $as_of - interval 30 day
        and reconciled_at <= $as_of
),

active_volumes as (
    select source, volume_id from volumes where is_active
),

fleet_days as (
    select
        fleet_daily.*,
        (epoch(snapshot_at) - epoch($as_of)) / 86400.0 as x
    from fleet_daily
    where snapshot_at > $as_of - interval 30 day
),

volume_slopes as (
    -- per volume first, then matched to the active ones: the join sees a row per volume, not
    -- one per observation
    select
        source,
        volume_id,
        regr_slope(used_bytes, x) filter (where x > -7) as bytes_growth_per_day_7d,
        regr_slope(used_bytes, x) as bytes_growth_per_day_30d,
        regr_slope(inode_count, x) filter (where x > -7) as inodes_growth_per_day_7d,
        regr_slope(inode_count, x) as inodes_growth_per_day_30d,
        count(x) as observations_30d
    from observations
    group by source, volume_id
),

per_volume as (
    select
        'volume' as scope,
        active_volumes.source,
        active_volumes.volume_id,
        volume_slopes.bytes_growth_per_day_7d,
        volume_slopes.bytes_growth_per_day_30d,
        volume_slopes.inodes_growth_per_day_7d,
        volume_slopes.inodes_growth_per_day_30d,
        coalesce(volume_slopes.observations_30d, 0) as observations_30d
    from active_volumes
    left join volume_slopes
        on active_volumes.source = volume_slopes.source
        and active_volumes.volume_id = volume_slopes.volume_id
),

fleet as (
    select
        'fleet' as scope,
        source,
        cast(null as varchar) as volume_id,
        regr_slope(used_bytes, x) filter (where x > -7) as bytes_growth_per_day_7d,
        regr_slope(used_bytes, x) as bytes_growth_per_day_30d,
        regr_slope(inode_count, x) filter (where x > -7) as inodes_growth_per_day_7d,
        regr_slope(inode_count, x) as inodes_growth_per_day_30d,
        count(*) as observations_30d
    from fleet_days
    group by source
),

final as (
    select *, $as_of as as_of from per_volume
    union all
    select *, $as_of as as_of from fleet
)

select * from final
