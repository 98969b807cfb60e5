-- Per volume, resource and UTC day, the sums a least-squares line needs (whole day and its last
-- 6 hours) over the reconciliations first seen that day: forecast_backtest adds up the days
-- before each origin, so no origin's forecast reads anything that was not known at it.
-- x is in days since 2020-01-01 00:00 UTC (a fixed reference, so a day's sums never change).
-- grain: (source, volume_id, resource, day)
-- depends on: volume_observations
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: day (an incremental build replaces the rows from $since on)
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

observations as (
    select
        source,
        volume_id,
        'bytes' as resource,
        cast(first_seen_at as date) as day,
        reconciled_at,
        (epoch(reconciled_at) - epoch(timestamptz '2020-01-01 00:00:00+00')) / 86400.0 as x,
        cast(used_bytes as double) as y
    from volume_observations
    where first_seen_at >= $since
    union all
    select
        source,
        volume_id,
        'inodes',
        cast(first_seen_at as date),
        reconciled_at,
        (epoch(reconciled_at) - epoch(timestamptz '2020-01-01 00:00:00+00')) / 86400.0,
        cast(inode_count as double)
    from volume_observations
    where first_seen_at >= $since
),

final as (
    select
        source,
        volume_id,
        resource,
        day,
        count(*) as n,
        sum(x) as sx,
        sum(y) as sy,
        sum(x * x) as sxx,
        sum(x * y) as sxy,
        arg_max(y, reconciled_at) as last_y,
        max(x) as last_x,
        count(*) filter (where reconciled_at >= day + interval 18 hour) as n6,
        regr_slope(y, x) filter (where reconciled_at >= day + interval 18 hour) as slope_6h
    from observations
    group by source, volume_id, resource, day
)

select * from final
