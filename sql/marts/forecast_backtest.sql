-- Forecasts scored against what happened: for every series (volume and resource) and every
-- daily origin (00:00 UTC) in the lake's history, what each method would have said from the
-- data known before the origin, beside when usage really reached the quota.
-- Methods: `predict_linear_6h` (a line over the last 6 hours, as the Kubernetes PVC-filling
-- alerts do), `predict_linear_window` (a line over the last $window_days days), `naive_7d`
-- (average growth of the last 7 days), all computed here from the reconciliations first seen
-- before the origin; and `volcap`, the production forecast (quota_forecast's SQL and
-- parameters) replayed by the build engine at each origin on the data known before it
-- (volcap_replay: each origin once, the latest settings.BACKTEST_MAX_ORIGINS kept).
-- Realized: `filled_at` is the first snapshot at or after the origin whose usage reached its
-- quota; `censored` when none did by the latest snapshot (then `days_until_filled` and
-- `abs_error_days` are null: an unfilled volume has no error yet, only a lower bound).
-- Origins are days with reconciliations of the series; a volume full at the origin is `full`.
-- grain: (source, volume_id, resource, method, origin)
-- depends on: forecast_daily_sums, volume_daily, quota_fills, forecast_calibration, volcap_replay
--   (source: kept by the build engine, pipelines/replay.py)
-- parameters: $as_of, $window_days, $critical_days, $warning_days, $max_forecast_days
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` or `inodes`
--   method: `volcap` (the production forecast), `predict_linear_6h` (a line over the last 6
--     hours, like the Kubernetes PVC-filling alerts), `predict_linear_window` (a line over the
--     forecast window) or `naive_7d` (average growth of the last 7 days)
--   origin: the forecast's instant (00:00 UTC of a day): it uses only data known before it
--   state: the predicted state, as in quota_forecast
--   risk: the predicted risk: `critical`, `warning` or `ok`
--   days_to_full: predicted days from the origin to full
--   days_to_full_low: early end of the 80% interval, calibrated as at the origin (`volcap`
--     only)
--   days_to_full_high: late end of the 80% interval, calibrated as at the origin (`volcap`
--     only); null when unbounded
--   filled_at: the first snapshot at or after the origin whose usage reached its quota; null if
--     none yet
--   days_until_filled: days from the origin to filled_at; null when censored
--   censored: not filled by the latest snapshot (no error yet, only a lower bound)
--   abs_error_days: |days_to_full - days_until_filled|; null when censored
--   in_interval: the realized fill lies within the 80% interval (`volcap` only); false too
--     when not filled yet but already past the interval's late end; null while unknown
--   interval_calibrated: the interval was calibrated at the origin (forecast_calibration
--     knew enough outcomes); false: the model's own interval (a young lake), null: no interval
--   as_of: the build's as_of: the latest snapshot_at in the lake
with

daily_sums as (
    select
        *,
        -- days since the reference instant of forecast_daily_sums' x
        datediff('day', date '2020-01-01', day) as day_number,
        cast(day as timestamptz) + interval 1 day as origin
    from forecast_daily_sums
    -- origins up to the build's instant (the session runs in UTC)
    where day < cast($as_of as date)
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
    union all
    select source, volume_id, 'inodes', day, max_file_count
    from volume_daily
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
),

baseline_forecasts as (
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
        end as days_point,
        cast(null as double) as days_to_full_low,
        cast(null as double) as days_to_full_high,
        cast(null as boolean) as interval_calibrated
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
),

volcap_forecasts as (
    -- the production forecast replayed at the origin on the data known before it (kept by the
    -- build engine, pipelines/replay.py), its interval calibrated as it would have been
    -- published then (forecast_calibration at the origin)
    select
        replay.source,
        replay.volume_id,
        replay.resource,
        'volcap' as method,
        replay.origin,
        replay.state,
        replay.days_to_full as days_point,
        -- each end moved out by its margin times the predicted days (forecast_calibration);
        -- greatest() skips nulls, so an unbounded end is kept null explicitly
        case
            when replay.state = 'full' or replay.days_to_full_low is null
                then replay.days_to_full_low
            else least(
                replay.days_to_full_low - coalesce(calibration.margin_low, 0.0)
                    * greatest(replay.days_to_full, 1 / 24),
                replay.days_to_full
            )
        end as days_to_full_low,
        case
            when replay.state = 'full' or replay.days_to_full_high is null
                then replay.days_to_full_high
            when calibration.late_unbounded then null
            else greatest(
                replay.days_to_full_high + coalesce(calibration.margin_high, 0.0)
                    * greatest(replay.days_to_full, 1 / 24),
                replay.days_to_full
            )
        end as days_to_full_high,
        case when replay.days_to_full_low is not null
            then coalesce(calibration.calibrated_from <> 'none', false)
        end as interval_calibrated
    from volcap_replay as replay
    left join forecast_calibration as calibration
        on replay.source = calibration.source
        and replay.origin = calibration.calibrated_at
        and replay.kind = calibration.kind
        and (
            replay.days_to_full > calibration.above_days
            and (calibration.up_to_days is null or replay.days_to_full <= calibration.up_to_days)
            or (calibration.above_days = 0 and replay.days_to_full = 0)
        )
    where replay.origin <= $as_of
),

forecasts as (
    select * from baseline_forecasts
    union all by name
    select * from volcap_forecasts
),

realized as (
    select
        forecasts.*,
        fills.snapshot_at as filled_at
    from forecasts
    asof left join quota_fills as fills
        on forecasts.source = fills.source
        and forecasts.volume_id = fills.volume_id
        and forecasts.resource = fills.resource
        and forecasts.origin <= fills.snapshot_at
),

final as (
    select
        source,
        volume_id,
        resource,
        method,
        origin,
        state,
        case
            when days_point <= $critical_days then 'critical'
            when days_point <= $warning_days then 'warning'
            else 'ok'
        end as risk,
        case when days_point <= $max_forecast_days then greatest(days_point, 0.0) end
            as days_to_full,
        case when days_to_full_low is not null then greatest(days_to_full_low, 0.0) end
            as days_to_full_low,
        case when days_to_full_high is not null then greatest(days_to_full_high, 0.0) end
            as days_to_full_high,
        filled_at,
        (epoch(filled_at) - epoch(origin)) / 86400.0 as days_until_filled,
        filled_at is null as censored,
        case when days_point <= $max_forecast_days then abs(
            greatest(days_point, 0.0) - (epoch(filled_at) - epoch(origin)) / 86400.0
        ) end as abs_error_days,
        case
            -- known once the late end has passed (an unbounded one: the early end), whether
            -- or not the volume filled earlier: scoring early fills before slow ones could
            -- come true would favour the early ones
            when days_to_full_low is null then null
            when (epoch($as_of) - epoch(origin)) / 86400.0
                < coalesce(days_to_full_high, greatest(days_to_full_low, 0.0)) then null
            else coalesce(
                (epoch(filled_at) - epoch(origin)) / 86400.0
                    between greatest(days_to_full_low, 0.0)
                    and coalesce(days_to_full_high, 'infinity'::double),
                days_to_full_high is null
            )
        end as in_interval,
        interval_calibrated,
        $as_of as as_of
    from realized
    where origin <= $as_of
)

select * from final
