-- The whole fleet's usage a day at a time over the next 30 days: a least-squares line through
-- the last 30 end-of-day totals (every source added up), with a prediction interval at the
-- build's interval coverage (80% by default). The report's fleet chart draws it.
-- No rows until three days have a total (a line needs a residual to have an interval).
-- grain: days_ahead
-- depends on: fleet_daily
-- parameters: $as_of, $interval_coverage, $z_interval (its normal quantile)
-- columns:
--   days_ahead: whole days after as_of, 0 to 30
--   forecast_at: as_of + days_ahead
--   used_bytes: fleet usage on the fitted line at forecast_at
--   used_bytes_low: low end of the prediction interval
--   used_bytes_high: high end of the prediction interval
--   interval_coverage: the interval's coverage (the build's INTERVAL_COVERAGE, 0.8 by default)
--   growth_per_day: the line's slope, bytes per day
--   fit_days: end-of-day totals the line is fitted on (the latest 30)
--   as_of: the build's as_of: the latest snapshot_at in the lake
with

day_totals as (
    -- the fleet at each day's end, as the report's fleet_days adds up the sources
    select day, max(snapshot_at) as snapshot_at, sum(used_bytes) as used_bytes
    from fleet_daily
    group by day
),

latest_days as (
    select
        (epoch(snapshot_at) - epoch($as_of)) / 86400.0 as x,
        cast(used_bytes as double) as y
    from day_totals
    where used_bytes is not null
    order by day desc
    limit 30
),

line as (
    select
        regr_count(y, x) as n,
        regr_slope(y, x) as slope,
        regr_intercept(y, x) as intercept,
        regr_avgx(y, x) as x_mean,
        regr_sxx(y, x) as sxx
    from latest_days
    having regr_count(y, x) >= 3 and regr_sxx(y, x) > 0
),

spread as (
    -- residuals summed one by one: syy - slope² sxx cancels catastrophically at fleet scale
    select
        sqrt(
            sum(power(latest_days.y - (line.intercept + line.slope * latest_days.x), 2))
            / (line.n - 2)
        ) as sigma
    from latest_days
    cross join line
    group by line.n
),

horizon as (
    select unnest(range(0, 31)) as days_ahead
),

projected as (
    select
        horizon.days_ahead,
        line.intercept + line.slope * horizon.days_ahead as used_bytes,
        $z_interval * spread.sigma
            * sqrt(1 + 1 / line.n + power(horizon.days_ahead - line.x_mean, 2) / line.sxx)
            as half_width,
        line.slope,
        line.n
    from horizon
    cross join line
    cross join spread
),

final as (
    select
        days_ahead,
        $as_of + to_days(cast(days_ahead as integer)) as forecast_at,
        used_bytes,
        used_bytes - half_width as used_bytes_low,
        used_bytes + half_width as used_bytes_high,
        $interval_coverage as interval_coverage,
        slope as growth_per_day,
        n as fit_days,
        $as_of as as_of
    from projected
)

select * from final order by days_ahead
