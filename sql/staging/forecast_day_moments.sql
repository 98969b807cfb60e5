-- Per volume, daily bucket and UTC day of first sighting, the moments of the reconciliations
-- (count, means, centred sums of squares and products of both resources): what quota_forecast
-- fits its daily means, their history and their noise on, adding up ~one row per day instead
-- of reading ~24 observations. A bucket is a UTC day from after its 00:00 up to the next 00:00
-- (the daily buckets of a forecast at 00:00 UTC, every replayed origin's); keyed by the day of
-- first sighting too, so "known before origin O" is `seen_day < O` exactly (pipelines/replay.py).
-- Centred moments, not raw sums: usage near 1e12 squared would lose the spread of a day.
-- Kept from a day before the widest window a forecast or the replay reads (its first origin's,
-- or the build's, as kept_horizon in pipelines/warehouse/incremental.py keeps observations).
-- grain: (source, volume_id, day, seen_day)
-- depends on: volume_observations, backtest_origins
-- parameters: $since (first day built; a full build binds the epoch), $as_of, $window_days,
--   $calibration_days
-- incremental: seen_day (an incremental build replaces the rows first seen from $since on)
-- incremental keeps: day >= (select least(cast($as_of as date) - greatest(cast($window_days as integer), 30) - 1, coalesce(cast(min(origin) as date) - cast($calibration_days as integer) - cast($window_days as integer) - 1, cast($as_of as date))) from backtest_origins)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   day: the daily bucket: reconciliations after its 00:00 UTC, up to the next day's 00:00
--   seen_day: the UTC day the reconciliations were first seen
--   n: reconciliations
--   first_reconciled_at: the earliest of them
--   x: their mean instant, in days since the bucket's 00:00 UTC
--   x_min: the earliest, in days since the bucket's 00:00 UTC
--   x_max: the latest, in days since the bucket's 00:00 UTC
--   x_ss: sum of squared deviations of x from its mean
--   bytes_y: mean bytes used
--   bytes_xy: sum of products of the deviations of x and of bytes used from their means
--   bytes_ss: sum of squared deviations of bytes used from its mean
--   inodes_y: mean inodes used
--   inodes_xy: sum of products of the deviations of x and of inodes used from their means
--   inodes_ss: sum of squared deviations of inodes used from its mean
with

horizon as (
    -- the first bucket kept: a day before the widest window a forecast or replay reads (the
    -- same day `incremental keeps:` above keeps from)
    select least(
        cast($as_of as date) - greatest(cast($window_days as integer), 30) - 1,
        coalesce(
            cast(min(origin) as date) - cast($calibration_days as integer)
                - cast($window_days as integer) - 1,
            cast($as_of as date)
        )
    ) as first_day
    from backtest_origins
),

observations as (
    select
        source,
        volume_id,
        -- a reconciliation at 00:00 ends the day before it (a forecast's buckets end at as_of).
        -- UTC days without a time zone conversion: ICU's cast of a timestamptz to a date, for
        -- every row, made most of this step's cost
        cast(make_timestamp(epoch_us(reconciled_at) - 1) as date) as day,
        cast(make_timestamp(epoch_us(first_seen_at)) as date) as seen_day,
        reconciled_at,
        (epoch(reconciled_at) - epoch(cast(day as timestamp))) / 86400.0 as x,
        used_bytes,
        inode_count
    from volume_observations
    where first_seen_at >= $since
        and reconciled_at > (select cast(first_day as timestamptz) from horizon)
),

final as (
    select
        source,
        volume_id,
        day,
        seen_day,
        count(*) as n,
        min(reconciled_at) as first_reconciled_at,
        avg(x) as x,
        min(x) as x_min,
        max(x) as x_max,
        regr_sxx(used_bytes, x) as x_ss,
        avg(used_bytes) as bytes_y,
        regr_sxy(used_bytes, x) as bytes_xy,
        regr_syy(used_bytes, x) as bytes_ss,
        avg(inode_count) as inodes_y,
        regr_sxy(inode_count, x) as inodes_xy,
        regr_syy(inode_count, x) as inodes_ss
    from observations
    group by source, volume_id, day, seen_day
)

select * from final
