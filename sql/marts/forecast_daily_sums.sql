-- Per volume, resource and UTC day, the sums a least-squares line needs (whole day and its last
-- 6 hours) over the reconciliations first seen that day: forecast_backtest adds up the days
-- before each origin, so no origin's forecast reads anything that was not known at it.
-- x is in days since 2020-01-01 00:00 UTC (a fixed reference, so a day's sums never change).
-- Kept from the first day the baselines read (backtest_baselines: the oldest scored origin's
-- window), not the whole history.
-- grain: (source, volume_id, resource, day)
-- depends on: volume_observations, backtest_origins
-- parameters: $since (first day built; a full build binds the epoch), $as_of, $window_days
-- incremental: day (an incremental build replaces the rows from $since on)
-- incremental keeps: day >= (select coalesce(cast(min(origin) as date) - 1 - greatest(cast($window_days as integer), 8), cast($as_of as date)) from backtest_origins)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` or `inodes`
--   day: the UTC day
--   n: reconciliations first seen that day
--   sx: sum of x (days since 2020-01-01 00:00 UTC)
--   sy: sum of usage
--   sxx: sum of x squared
--   sxy: sum of x times usage
--   last_y: the day's last usage
--   last_x: x of the day's last reconciliation
--   n6: reconciliations in the day's last 6 hours
--   slope_6h: least-squares slope over the day's last 6 hours, per day
with

horizon as (
    -- the first day kept: the oldest scored origin's last day and the
    -- max($window_days - 1, 7) before it (the days backtest_baselines reads; the same day
    -- `incremental keeps:` above keeps from)
    select coalesce(
        cast(min(origin) as date) - 1 - greatest(cast($window_days as integer), 8),
        cast($as_of as date)
    ) as first_day
    from backtest_origins
),

observations as (
    select
        source,
        volume_id,
        -- the UTC day without a time zone conversion (ICU's cast of a timestamptz to a date,
        -- and its comparison with a date's hour, made most of this step's cost)
        cast(make_timestamp(epoch_us(first_seen_at)) as date) as day,
        (epoch(reconciled_at) - epoch(timestamptz '2020-01-01 00:00:00+00')) / 86400.0 as x,
        -- in the day's last 6 hours
        epoch(reconciled_at) - epoch(cast(day as timestamp)) >= 18 * 3600 as late,
        reconciled_at,
        cast(used_bytes as double) as bytes_y,
        cast(inode_count as double) as inodes_y
    from volume_observations
    where first_seen_at >= $since
        and first_seen_at >= (select cast(first_day as timestamptz) from horizon)
),

volume_days as (
    -- both resources in one pass over the observations (a row per reconciliation: the
    -- longest step of a full build when each resource had its own)
    select
        source,
        volume_id,
        day,
        count(*) as n,
        sum(x) as sx,
        sum(x * x) as sxx,
        max(x) as last_x,
        count(*) filter (where late) as n6,
        sum(bytes_y) as bytes_sy,
        sum(x * bytes_y) as bytes_sxy,
        arg_max(bytes_y, reconciled_at) as bytes_last_y,
        regr_slope(bytes_y, x) filter (where late)
            as bytes_slope_6h,
        sum(inodes_y) as inodes_sy,
        sum(x * inodes_y) as inodes_sxy,
        arg_max(inodes_y, reconciled_at) as inodes_last_y,
        regr_slope(inodes_y, x) filter (where late)
            as inodes_slope_6h
    from observations
    group by source, volume_id, day
),

final as (
    select source, volume_id, 'bytes' as resource, day, n, sx, bytes_sy as sy, sxx,
        bytes_sxy as sxy, bytes_last_y as last_y, last_x, n6, bytes_slope_6h as slope_6h
    from volume_days
    union all
    select source, volume_id, 'inodes', day, n, sx, inodes_sy, sxx, inodes_sxy, inodes_last_y,
        last_x, n6, inodes_slope_6h
    from volume_days
)

select * from final
