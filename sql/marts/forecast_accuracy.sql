-- How good each forecasting method has been, from forecast_backtest: per source, method and
-- horizon bucket of the predicted time to full (`≤ 7 d`, `≤ 30 d`, `> 30 d`).
-- Series already full at the origin are left out (there is nothing to forecast).
-- Errors (`mae_days`, `median_ape`) are scored on forecasts whose volume did fill; censored
-- forecasts (no fill by the latest snapshot) are counted apart, and those already
-- $backtest_slack_days days past their predicted date are `known_misses`.
-- Alerts: a forecast flags a bucket when it predicts a fill within it (`≤ 7 d` = critical,
-- `≤ 30 d` = critical or warning). Precision: flagged, and filled within the bucket plus
-- $backtest_slack_days days, over flagged forecasts whose outcome is known by now (origin at
-- least bucket + slack days before the latest snapshot). Recall: filled within the bucket, and
-- flagged at that origin. Lead time: from the first flagging origin to the fill. False alarms:
-- flagged but no fill within bucket + slack, per 1,000 volume-days with a known outcome.
-- grain: (source, method, horizon)
-- depends on: forecast_backtest
-- parameters: $as_of, $backtest_slack_days
-- columns:
--   source: the fleet
--   method: the forecasting method, as in forecast_backtest
--   horizon: bucket of the predicted time to full: `≤ 7 d`, `≤ 30 d` or `> 30 d`
--   forecasts: forecasts in the bucket (volumes already full at the origin left out)
--   scored: forecasts whose volume did fill (errors are measured on these)
--   censored: forecasts whose volume has not filled by the latest snapshot
--   known_misses: censored forecasts already slack_days past their predicted date
--   mae_days: mean absolute error in days, over scored forecasts
--   median_ape: median absolute percentage error, over scored forecasts
--   intervals_scored: calibrated 80% intervals whose outcome is known (`volcap` only):
--     filled, with the late end passed (an unbounded one: the early end), or not filled past a
--     finite late end (a miss); not filled under an unbounded late end: not known
--   coverage_80: share of intervals_scored that held the fill (`volcap` only)
--   coverage_80_uncalibrated: the same for the model's own intervals, published before
--     forecast_calibration knew enough outcomes (a young lake)
--   alert_precision: flagged within the bucket and filled within it plus slack_days, over
--     flagged forecasts whose outcome is known
--   alert_recall: filled within the bucket and flagged at that origin, over fills
--   median_lead_days: median days from the first flagging origin to the fill
--   false_alarms_per_1000_volume_days: flagged but not filled within the bucket plus
--     slack_days, per 1,000 volume-days with a known outcome
--   slack_days: the slack allowed on a fill's date when scoring alerts
--   as_of: the build's as_of: the latest snapshot_at in the lake
with

backtest as (
    select
        *,
        (epoch($as_of) - epoch(origin)) / 86400.0 as days_known
    from forecast_backtest
    where state <> 'full'
),

horizons as (
    select * from (
        values ('≤ 7 d', 0.0, 7.0), ('≤ 30 d', 7.0, 30.0), ('> 30 d', 30.0, null)
    ) as horizons (horizon, above_days, up_to_days)
),

errors as (
    select
        backtest.source,
        backtest.method,
        horizons.horizon,
        count(*) as forecasts,
        count(backtest.abs_error_days) as scored,
        count(*) filter (where backtest.censored) as censored,
        count(*) filter (
            where backtest.censored
                and backtest.days_known > backtest.days_to_full + $backtest_slack_days
        ) as known_misses,
        avg(backtest.abs_error_days) as mae_days,
        median(backtest.abs_error_days / backtest.days_until_filled)
            filter (where backtest.days_until_filled > 0) as median_ape,
        count(backtest.in_interval) filter (where backtest.interval_calibrated)
            as intervals_scored,
        avg(cast(backtest.in_interval as double)) filter (where backtest.interval_calibrated)
            as coverage_80,
        avg(cast(backtest.in_interval as double)) filter (where not backtest.interval_calibrated)
            as coverage_80_uncalibrated
    from backtest
    inner join horizons
        on backtest.days_to_full > horizons.above_days
        and (horizons.up_to_days is null or backtest.days_to_full <= horizons.up_to_days)
        or (horizons.above_days = 0 and backtest.days_to_full = 0)
    group by backtest.source, backtest.method, horizons.horizon
),

alerts as (
    -- each forecast against each alert horizon whose outcome is known
    select
        backtest.*,
        horizons.horizon,
        horizons.up_to_days,
        coalesce(backtest.days_to_full <= horizons.up_to_days, false) as flagged,
        coalesce(
            backtest.days_until_filled <= horizons.up_to_days + $backtest_slack_days, false
        ) as filled_in_time,
        backtest.days_known >= horizons.up_to_days + $backtest_slack_days as outcome_known
    from backtest
    inner join horizons on horizons.up_to_days is not null
),

first_flags as (
    -- per fill, the first origin that flagged it
    select
        source,
        volume_id,
        resource,
        method,
        horizon,
        filled_at,
        (epoch(filled_at) - epoch(min(origin) filter (where flagged))) / 86400.0 as lead_days
    from alerts
    where filled_at is not null
    group by source, volume_id, resource, method, horizon, filled_at
),

alert_scores as (
    select
        source,
        method,
        horizon,
        count(*) filter (where flagged and outcome_known and filled_in_time)
            / nullif(count(*) filter (where flagged and outcome_known), 0) as alert_precision,
        count(*) filter (where flagged and days_until_filled <= up_to_days)
            / nullif(count(*) filter (where days_until_filled <= up_to_days), 0)
            as alert_recall,
        1000.0 * count(*) filter (where flagged and outcome_known and not filled_in_time)
            / nullif(count(*) filter (where outcome_known), 0)
            as false_alarms_per_1000_volume_days
    from alerts
    group by source, method, horizon
),

lead_times as (
    select source, method, horizon, median(lead_days) as median_lead_days
    from first_flags
    group by source, method, horizon
),

final as (
    select
        errors.*,
        alert_scores.alert_precision,
        alert_scores.alert_recall,
        lead_times.median_lead_days,
        alert_scores.false_alarms_per_1000_volume_days,
        $backtest_slack_days as slack_days,
        $as_of as as_of
    from errors
    left join alert_scores
        on errors.source = alert_scores.source
        and errors.method = alert_scores.method
        and errors.horizon = alert_scores.horizon
    left join lead_times
        on errors.source = lead_times.source
        and errors.method = lead_times.method
        and errors.horizon = lead_times.horizon
)

select * from final
