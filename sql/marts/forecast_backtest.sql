-- Forecasts scored against what happened: for every series (volume and resource) and each of
-- the latest $backtest_max_origins daily origins (00:00 UTC; backtest_origins), what each
-- method would have said from the data known before the origin, beside when usage really
-- reached the quota. All four methods are scored on the same origins, so the table is bounded
-- (series x 4 methods x origins) whatever the lake's history.
-- Methods: `predict_linear_6h` (a line over the last 6 hours, as the Kubernetes PVC-filling
-- alerts do), `predict_linear_window` (a line over the last $window_days days), `naive_7d`
-- (average growth of the last 7 days), computed from the reconciliations first seen before the
-- origin (backtest_baselines, kept per origin); and `volcap`, the production forecast
-- (quota_forecast's SQL and parameters) replayed by the build engine at each origin on the data
-- known before it (volcap_replay: each origin once).
-- Realized: `filled_at` is the first snapshot at or after the origin whose usage reached its
-- quota; `censored` when none did by the latest snapshot (then `days_until_filled` and
-- `abs_error_days` are null: an unfilled volume has no error yet, only a lower bound).
-- Origins are days with reconciliations of the series; a volume full at the origin is `full`.
-- Kept by origin: a row's outcome changes only with a fill of its series or when the build's
-- as_of crosses its interval's late end (in_interval is null until then). An incremental build
-- keeps the rows of origins up to its first changed day's 00:00 that were filled before that
-- day or whose series has no fill from it on, and whose late end lies on the same side of the
-- previous build's as_of ($previous_as_of) as of this one's (or that have no interval), sets
-- their as_of, and scores only the others anew (the model's `reopened`: the same condition over
-- the same columns on both sides); an origin up to that day new to the backtest, or a kept
-- fill from that day on that left the lake, makes it a full build (`incremental full when`).
-- grain: (source, volume_id, resource, method, origin)
-- depends on: backtest_origins, backtest_baselines, quota_fills, forecast_calibration,
--   volcap_replay (source: kept by the build engine, pipelines/replay.py)
-- parameters: $as_of, $since, $previous_as_of (the as_of of the rows an incremental build keeps;
--   $as_of in a full build), $critical_days, $warning_days, $max_forecast_days
-- incremental: origin after $since (the rows of later origins are scored anew)
-- incremental keeps: origin in (select origin from backtest_origins) and not ((filled_at is null or filled_at >= $since) and (source, volume_id, resource) in (select (source, volume_id, resource) from quota_fills where snapshot_at >= $since)) and not coalesce(((epoch($previous_as_of) - epoch(origin)) / 86400.0 < coalesce(days_to_full_high, days_to_full_low)) <> ((epoch($as_of) - epoch(origin)) / 86400.0 < coalesce(days_to_full_high, days_to_full_low)), false)
-- incremental updates: as_of = $as_of
-- incremental full when: exists (select origin from backtest_origins where origin <= $since and origin not in (select origin from copy_of_backtest_origins)) -- an origin before the first changed day entered the backtest
-- incremental full when: exists (select 1 from forecast_backtest where filled_at >= $since and (source, volume_id, resource) not in (select (source, volume_id, resource) from quota_fills where snapshot_at >= $since)) -- a fill from the first changed day on left the lake
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` or `inodes`
--   method: `volcap` (the production forecast), `predict_linear_6h` (a line over the last 6
--     hours, like the Kubernetes PVC-filling alerts), `predict_linear_window` (a line over the
--     forecast window) or `naive_7d` (average growth of the last 7 days)
--   origin: the forecast's instant (00:00 UTC of a day): it uses only data known before it;
--     the latest settings.BACKTEST_MAX_ORIGINS days' origins, the same for every method
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
--     when not filled yet but already past the interval's late end; null while unknown (not
--     filled yet and the late end unbounded: unknown until it fills)
--   interval_calibrated: the interval was calibrated at the origin (forecast_calibration
--     knew enough outcomes); false: the model's own interval (a young lake), null: no interval
--   as_of: the build's as_of: the latest snapshot_at in the lake
with

baseline_forecasts as (
    -- the baselines, kept per origin (backtest_baselines)
    select
        *,
        cast(null as double) as days_to_full_low,
        cast(null as double) as days_to_full_high,
        cast(null as boolean) as interval_calibrated
    from backtest_baselines
    where origin <= $as_of
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
    -- the scored origins (the replay also keeps the days before them that calibrate them)
    semi join backtest_origins as origins
        on replay.origin = origins.origin
    where replay.origin <= $as_of
),

forecasts as (
    select * from baseline_forecasts
    union all by name
    select * from volcap_forecasts
),

refilled as (
    -- the series with a fill from the first changed day on
    select distinct source, volume_id, resource
    from quota_fills
    where snapshot_at >= $since
),

candidates as (
    -- a superset of the rows `reopened` keeps (the baselines have no interval; an interval's
    -- late end, as `final` clips it, within a day of the two as_of): a build scores little more
    -- than it keeps
    select * from forecasts
    where origin > $since
        or (days_to_full_high is not null or days_to_full_low is not null)
            and case
                when days_to_full_high is not null then greatest(days_to_full_high, 0.0)
                else greatest(days_to_full_low, 0.0)
            end between (epoch(least($previous_as_of, $as_of)) - epoch(origin)) / 86400.0 - 1
                and (epoch(greatest($previous_as_of, $as_of)) - epoch(origin)) / 86400.0 + 1
        or (source, volume_id, resource) in (select (source, volume_id, resource) from refilled)
),

first_fills as (
    -- each day's first fill (quota_fills) from the earliest origin on: the as-of join sorts
    -- only these
    select source, volume_id, resource, snapshot_at
    from quota_fills
    where snapshot_at >= (select min(origin) from candidates)
),

filled_series as (
    select distinct source, volume_id, resource
    from first_fills
),

realized as (
    -- the first fill at or after the origin; the as-of join sorts what it joins, so only the
    -- series that ever filled go through it (most never do)
    select
        forecasts.*,
        fills.snapshot_at as filled_at
    from (
        select * from candidates as forecasts
        semi join filled_series
            on forecasts.source = filled_series.source
            and forecasts.volume_id = filled_series.volume_id
            and forecasts.resource = filled_series.resource
    ) as forecasts
    asof left join first_fills as fills
        on forecasts.source = fills.source
        and forecasts.volume_id = fills.volume_id
        and forecasts.resource = fills.resource
        and forecasts.origin <= fills.snapshot_at
    union all by name
    select
        forecasts.*,
        cast(null as timestamptz) as filled_at
    from candidates as forecasts
    anti join filled_series
        on forecasts.source = filled_series.source
        and forecasts.volume_id = filled_series.volume_id
        and forecasts.resource = filled_series.resource
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
            -- not filled: past a finite late end, a miss; with an unbounded late end it stays
            -- unknown (it may fill within the interval yet, or never: no time to full at all)
            when filled_at is null then case when days_to_full_high is not null then false end
            else (epoch(filled_at) - epoch(origin)) / 86400.0
                between greatest(days_to_full_low, 0.0)
                and coalesce(days_to_full_high, 'infinity'::double)
        end as in_interval,
        interval_calibrated,
        $as_of as as_of
    from realized
    where origin <= $as_of
),

reopened as (
    -- what an incremental build scores anew (every row in a full build): later origins, rows
    -- not filled before its first changed day of series filled from it on (a fill before it is
    -- the first at or after the origin either way), intervals whose late end lies between the
    -- previous build's as_of and this one's (in_interval's own test: known once as_of reaches
    -- the late end, an unbounded one the early end)
    select final.*
    from final
    where origin > $since
        or (filled_at is null or filled_at >= $since)
            and (source, volume_id, resource) in (select (source, volume_id, resource) from refilled)
        or coalesce(
            (
                (epoch($previous_as_of) - epoch(origin)) / 86400.0
                    < coalesce(days_to_full_high, days_to_full_low)
            ) <> (
                (epoch($as_of) - epoch(origin)) / 86400.0
                    < coalesce(days_to_full_high, days_to_full_low)
            ),
            false
        )
)

select * from reopened
