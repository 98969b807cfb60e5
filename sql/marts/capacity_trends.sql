-- Growth per day over the last 7 and 30 days (least-squares slope), bytes and inodes: one row
-- per active volume (scope 'volume', from its reconciliations) and one per source for its fleet
-- (scope 'fleet', volume_id null, from fleet_daily's end-of-day totals).
-- The volume slopes add up forecast_day_moments' per-day moments for the days wholly inside a
-- window (one row per volume and day instead of ~24 reconciliations) and read
-- volume_observations only for the days a window's start or end cuts: the same least-squares
-- fit over the same reconciliations.
-- grain: (scope, source, volume_id)
-- depends on: forecast_day_moments, volume_observations, volumes, fleet_daily
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

cuts as (
    -- the daily buckets (after a UTC day's 00:00, up to the next: forecast_day_moments') that
    -- a window's start or end cuts: read as single reconciliations
    select unnest([
        cast($as_of - interval 30 day - interval 1 microsecond as date),
        cast($as_of - interval 7 day - interval 1 microsecond as date),
        cast($as_of - interval 1 microsecond as date)
    ]) as day
),

day_groups as (
    -- the days wholly inside the 30-day window (after the first cut day, before the last)
    select
        source,
        volume_id,
        -- after the 7-day window's cut day: wholly inside it
        day > cast($as_of - interval 7 day - interval 1 microsecond as date) as in_7d,
        n,
        x + (epoch(cast(day as timestamptz)) - epoch($as_of)) / 86400.0 as x,
        coalesce(x_ss, 0.0) as x_ss,
        bytes_y,
        coalesce(bytes_xy, 0.0) as bytes_xy,
        inodes_y,
        coalesce(inodes_xy, 0.0) as inodes_xy
    from forecast_day_moments
    where day > (select min(day) from cuts)
        and day < (select max(day) from cuts)
        and day not in (select day from cuts)
),

cut_observations as (
    -- each reconciliation of a cut day inside the window, as a group of one
    select
        source,
        volume_id,
        reconciled_at > $as_of - interval 7 day as in_7d,
        1 as n,
        (epoch(reconciled_at) - epoch($as_of)) / 86400.0 as x,
        0.0 as x_ss,
        cast(used_bytes as double) as bytes_y,
        0.0 as bytes_xy,
        cast(inode_count as double) as inodes_y,
        0.0 as inodes_xy
    from volume_observations
    where reconciled_at > $as_of - interval 30 day
        and reconciled_at <= $as_of
        -- in a cut day's bucket (compared with constants: a cast of every row's instant cost
        -- more than the whole fit)
        and (
            reconciled_at <= cast(
                cast($as_of - interval 30 day - interval 1 microsecond as date) + 1 as timestamptz
            )
            or reconciled_at > cast(
                cast($as_of - interval 7 day - interval 1 microsecond as date) as timestamptz
            ) and reconciled_at <= cast(
                cast($as_of - interval 7 day - interval 1 microsecond as date) + 1 as timestamptz
            )
            or reconciled_at > cast(cast($as_of - interval 1 microsecond as date) as timestamptz)
        )
),

groups as (
    select * from day_groups
    union all
    select * from cut_observations
),

sums as (
    -- per volume, the sums of each window's fit, x in days from as_of (within 30 of 0, so
    -- the sums about the means below lose nothing a regr_slope would keep): a group adds its
    -- own spread about its mean and its mean's (x_ss + n x²; bytes_xy + n x y)
    select
        source,
        volume_id,
        sum(n) as n_30d,
        sum(n * x) as x_30d,
        sum(x_ss + n * x * x) as xx_30d,
        sum(n * bytes_y) as bytes_30d,
        sum(bytes_xy + n * x * bytes_y) as bytes_x_30d,
        sum(n * inodes_y) as inodes_30d,
        sum(inodes_xy + n * x * inodes_y) as inodes_x_30d,
        sum(n) filter (where in_7d) as n_7d,
        sum(n * x) filter (where in_7d) as x_7d,
        sum(x_ss + n * x * x) filter (where in_7d) as xx_7d,
        sum(n * bytes_y) filter (where in_7d) as bytes_7d,
        sum(bytes_xy + n * x * bytes_y) filter (where in_7d) as bytes_x_7d,
        sum(n * inodes_y) filter (where in_7d) as inodes_7d,
        sum(inodes_xy + n * x * inodes_y) filter (where in_7d) as inodes_x_7d
    from groups
    group by source, volume_id
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
    -- one per observation. slope = sxy / sxx about the means; null without two distinct
    -- instants, as regr_slope's
    select
        source,
        volume_id,
        (bytes_x_7d - x_7d * bytes_7d / n_7d) / nullif(xx_7d - x_7d * x_7d / n_7d, 0)
            as bytes_growth_per_day_7d,
        (bytes_x_30d - x_30d * bytes_30d / n_30d) / nullif(xx_30d - x_30d * x_30d / n_30d, 0)
            as bytes_growth_per_day_30d,
        (inodes_x_7d - x_7d * inodes_7d / n_7d) / nullif(xx_7d - x_7d * x_7d / n_7d, 0)
            as inodes_growth_per_day_7d,
        (inodes_x_30d - x_30d * inodes_30d / n_30d)
            / nullif(xx_30d - x_30d * x_30d / n_30d, 0) as inodes_growth_per_day_30d,
        cast(n_30d as bigint) as observations_30d
    from sums
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
