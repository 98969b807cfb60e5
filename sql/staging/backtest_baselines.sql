-- The baselines' forecasts at each scored origin (backtest_origins), from the reconciliations
-- first seen before it (forecast_daily_sums' per-day sums): `predict_linear_6h` (a line over
-- the last 6 hours, as the Kubernetes PVC-filling alerts do), `predict_linear_window` (a line
-- over the last $window_days days) and `naive_7d` (average growth of the last 7 days).
-- Kept by origin: an incremental build computes only the origins after its first changed day's
-- 00:00 (reading only the days their windows span) and drops those that left backtest_origins;
-- forecast_backtest scores them against quota_fills.
-- grain: (source, volume_id, resource, method, origin)
-- depends on: backtest_origins, forecast_daily_sums, volume_daily
-- parameters: $since, $as_of, $window_days, $max_forecast_days
-- incremental: origin after $since (an incremental build replaces the origins after $since's
--   00:00: the origin at it reads only the days before $since, unchanged)
-- incremental keeps: origin in (select origin from backtest_origins)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` or `inodes`
--   method: `predict_linear_6h`, `predict_linear_window` or `naive_7d`
--   origin: the forecast's instant (00:00 UTC of a day)
--   state: the predicted state, as in quota_forecast
--   days_point: predicted days from the origin to full (unclipped; null when no fill)
with

wanted as (
    -- the scored origins this build computes (a full build: all of them)
    select origin
    from backtest_origins
    where origin > $since
),

daily_sums as (
    select
        *,
        -- days since the reference instant of forecast_daily_sums' x
        datediff('day', date '2020-01-01', day) as day_number,
        cast(day as timestamptz) + interval 1 day as origin
    from forecast_daily_sums
    where day < cast($as_of as date)
        -- the days the wanted origins' windows span: their last day and the
        -- max($window_days - 1, 7) before it
        and day >= (select cast(min(origin) as date) from wanted)
            - 1 - greatest(cast($window_days as integer), 8)
),

windowed as (
    select
        *,
        sum(n) over fit_window as wn,
        sum(sx) over fit_window as wsx,
        sum(sy) over fit_window as wsy,
        sum(sxx) over fit_window as wsxx,
        sum(sxy) over fit_window as wsxy,
        arg_min(last_y, day_number) over week as week_first_y,
        arg_min(last_x, day_number) over week as week_first_x
    from daily_sums
    window
        fit_window as (
            partition by source, volume_id, resource order by day_number
            range between $window_days - 1 preceding and current row
        ),
        week as (
            partition by source, volume_id, resource order by day_number
            range between 7 preceding and current row
        )
),

quotas as (
    -- the quota in force at the origin: the end of the day before it
    select source, volume_id, 'bytes' as resource, day, max_size_bytes as quota
    from volume_daily
    where day >= (select cast(min(origin) as date) from wanted) - 1
    union all
    select source, volume_id, 'inodes', day, max_file_count
    from volume_daily
    where day >= (select cast(min(origin) as date) from wanted) - 1
),

baselines as (
    select
        windowed.source,
        windowed.volume_id,
        windowed.resource,
        windowed.origin,
        windowed.last_y as current,
        windowed.last_x,
        windowed.day_number,
        quotas.quota,
        unnest([
            {'method': 'predict_linear_6h', 'slope': case when n6 >= 2 then slope_6h end},
            {
                'method': 'predict_linear_window',
                'slope': (wn * wsxy - wsx * wsy) / nullif(wn * wsxx - wsx * wsx, 0)
            },
            {
                'method': 'naive_7d',
                'slope': (last_y - week_first_y) / nullif(last_x - week_first_x, 0)
            }
        ], recursive := true)
    from windowed
    inner join quotas
        on windowed.source = quotas.source
        and windowed.volume_id = quotas.volume_id
        and windowed.resource = quotas.resource
        and windowed.day = quotas.day
    semi join wanted
        on windowed.origin = wanted.origin
),

final as (
    select
        source,
        volume_id,
        resource,
        method,
        origin,
        case
            when quota is null then 'unbounded'
            when current >= quota then 'full'
            when slope is null then 'insufficient_history'
            -- as in quota_forecast: a rise that fills nothing within the horizon is no trend
            when slope > 0 and (quota - current) / slope <= $max_forecast_days then 'filling'
            when slope < 0 then 'shrinking'
            else 'flat'
        end as state,
        case
            when quota is null then null
            when current >= quota then 0.0
            -- from the last observation, in days after the origin
            when slope > 0 then greatest(
                (quota - current) / slope + last_x - day_number - 1,
                0.0
            )
        end as days_point
    -- a slope within float noise of zero is zero: sums over x in days since 2020 cancel to
    -- about 1e-11 of the level, so an incremental and a full build could otherwise call the
    -- same flat series `flat` and `shrinking`
    from (
        select * replace (
            case when abs(slope) <= 1e-9 * greatest(abs(current), 1.0) then 0.0 else slope end
            as slope
        )
        from baselines
    )
)

select * from final
