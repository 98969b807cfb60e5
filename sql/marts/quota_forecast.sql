-- Time to full per active volume and resource ('bytes' against max_size_bytes, 'inodes'
-- against max_file_count), with an 80% interval. Method and states: README, "Forecasting method".
-- Usage is fitted on reconciliations (volume_observations) after the latest level shift in the
-- window, as daily means once the fit spans a week; the trend must be significant to count.
-- grain: (source, volume_id, resource) for volumes in their source's latest snapshot
-- depends on: volumes, volume_observations
-- parameters: $as_of, $window_days, $daily_fit_days, $shift_min_share, $shift_min_steps,
--   $z_interval, $z_trend, $min_history_hours, $min_observations, $stale_after,
--   $max_forecast_days, $critical_days, $warning_days
with

active_volumes as (
    select * from volumes where is_active
),

observations as (
    -- volume_observations, each beside the observation before it: kept by the build engine
    -- (pipelines/warehouse.py `_update_observation_steps`) from the first changed day on, so a
    -- build no longer sorts the whole window
    select * from volume_observation_steps
    where reconciled_at > $as_of - to_days(cast($window_days as integer))
        and reconciled_at <= $as_of
),

current_usage as (
    select source, volume_id, 'bytes' as resource, used_bytes as current, max_size_bytes as quota,
        last_reconciled_at
    from active_volumes
    union all
    select source, volume_id, 'inodes', inode_count, max_file_count, last_reconciled_at
    from active_volumes
),

observation_steps as (
    -- each observation beside the one before it, when that one is in the window too
    select
        * exclude (previous_reconciled_at, used_bytes_previous, inode_count_previous),
        case when previous_reconciled_at > $as_of - to_days(cast($window_days as integer))
            then used_bytes_previous end as used_bytes_previous,
        case when previous_reconciled_at > $as_of - to_days(cast($window_days as integer))
            then inode_count_previous end as inode_count_previous
    from observations
),

steps as (
    -- x: days relative to as_of (negative = before it); y: the resource's usage
    select source, volume_id, 'bytes' as resource, reconciled_at,
        (epoch(reconciled_at) - epoch($as_of)) / 86400.0 as x, cast(used_bytes as double) as y,
        cast(used_bytes_previous as double) as y_previous
    from observation_steps
    union all
    select source, volume_id, 'inodes', reconciled_at,
        (epoch(reconciled_at) - epoch($as_of)) / 86400.0, cast(inode_count as double),
        cast(inode_count_previous as double)
    from observation_steps
),

points as (
    select source, volume_id, resource, reconciled_at, x, y from steps
),

typical_steps as (
    select source, volume_id, resource, median(abs(y - y_previous)) as typical_step
    from steps
    where y_previous is not null
    group by source, volume_id, resource
),

level_shifts as (
    -- a drop that is both a large share of the level and far beyond the usual step size:
    -- a cleanup or delete, not noise or the downswing of a cycle
    select steps.source, steps.volume_id, steps.resource, max(steps.x) as shift_x
    from steps
    inner join typical_steps
        on steps.source = typical_steps.source
        and steps.volume_id = typical_steps.volume_id
        and steps.resource = typical_steps.resource
    where steps.y_previous - steps.y > $shift_min_share * steps.y_previous
        and steps.y_previous - steps.y > $shift_min_steps * typical_steps.typical_step
    group by steps.source, steps.volume_id, steps.resource
),

fit_points as (
    select points.*
    from points
    left join level_shifts
        on points.source = level_shifts.source
        and points.volume_id = level_shifts.volume_id
        and points.resource = level_shifts.resource
    where points.x >= coalesce(level_shifts.shift_x, -1e9)
),

history as (
    select
        source,
        volume_id,
        resource,
        count(*) as observations,
        min(reconciled_at) as trend_since,
        (max(x) - min(x)) * 24 as history_hours
    from fit_points
    group by source, volume_id, resource
),

buckets as (
    -- daily means once the fit spans a week: daily and weekly cycles average out instead of
    -- looking like trends, and hourly noise no longer inflates the sample size
    select fit_points.source, fit_points.volume_id, fit_points.resource, avg(x) as x, avg(y) as y
    from fit_points
    inner join history
        on fit_points.source = history.source
        and fit_points.volume_id = history.volume_id
        and fit_points.resource = history.resource
    group by
        fit_points.source,
        fit_points.volume_id,
        fit_points.resource,
        case when history.history_hours >= 24 * $daily_fit_days then ceil(x) else x end
),

fits as (
    select
        source,
        volume_id,
        resource,
        regr_count(y, x) as fit_points,
        regr_slope(y, x) as slope,
        regr_intercept(y, x) as intercept,
        regr_sxx(y, x) as sxx,
        regr_syy(y, x) as syy,
        regr_avgx(y, x) as x_mean,
        regr_avgy(y, x) as y_mean
    from buckets
    group by source, volume_id, resource
    having regr_count(y, x) >= 3 and regr_sxx(y, x) > 0
),

observation_noise as (
    -- spread of single observations around the fitted line: the truth reaches the quota when
    -- an observation does, not when the mean line does, so the interval carries this spread
    select
        fit_points.source,
        fit_points.volume_id,
        fit_points.resource,
        coalesce(stddev_samp(fit_points.y - (fits.intercept + fits.slope * fit_points.x)), 0.0)
            as noise_sd
    from fit_points
    inner join fits
        on fit_points.source = fits.source
        and fit_points.volume_id = fits.volume_id
        and fit_points.resource = fits.resource
    group by fit_points.source, fit_points.volume_id, fit_points.resource
),

residuals as (
    select
        buckets.source,
        buckets.volume_id,
        buckets.resource,
        buckets.x,
        buckets.y - (fits.intercept + fits.slope * buckets.x) as residual
    from buckets
    inner join fits
        on buckets.source = fits.source
        and buckets.volume_id = fits.volume_id
        and buckets.resource = fits.resource
),

autocorrelation as (
    -- lag-1 autocorrelation of the residuals: a cycle or a slow wander leaves correlated
    -- residuals, which carry less information than independent noise
    select
        source,
        volume_id,
        resource,
        greatest(0.0, least(0.9, coalesce(
            sum(residual * residual_previous) / nullif(sum(residual * residual), 0), 0.0
        ))) as r1
    from (
        select *, lag(residual) over (partition by source, volume_id, resource order by x)
            as residual_previous
        from residuals
    )
    group by source, volume_id, resource
),

trends as (
    select
        fits.*,
        autocorrelation.r1,
        sqrt(
            greatest(fits.syy - fits.slope * fits.slope * fits.sxx, 0.0)
            / (fits.fit_points - 2) / fits.sxx
            * (1 + autocorrelation.r1) / (1 - autocorrelation.r1)
        ) as slope_se,
        greatest(
            fits.fit_points * (1 - autocorrelation.r1) / (1 + autocorrelation.r1) - 2, 1.0
        ) as df
    from fits
    inner join autocorrelation
        on fits.source = autocorrelation.source
        and fits.volume_id = autocorrelation.volume_id
        and fits.resource = autocorrelation.resource
),

quantiles as (
    -- Student t quantiles from normal ones (Cornish-Fisher expansion; within 2% for df >= 3)
    select
        *,
        $z_trend
            + ($z_trend ^ 3 + $z_trend) / (4 * df)
            + (5 * $z_trend ^ 5 + 16 * $z_trend ^ 3 + 3 * $z_trend) / (96 * df ^ 2)
            + (3 * $z_trend ^ 7 + 19 * $z_trend ^ 5 + 17 * $z_trend ^ 3 - 15 * $z_trend)
                / (384 * df ^ 3) as t_trend,
        $z_interval
            + ($z_interval ^ 3 + $z_interval) / (4 * df)
            + (5 * $z_interval ^ 5 + 16 * $z_interval ^ 3 + 3 * $z_interval) / (96 * df ^ 2)
            + (3 * $z_interval ^ 7 + 19 * $z_interval ^ 5 + 17 * $z_interval ^ 3
                - 15 * $z_interval) / (384 * df ^ 3) as t_interval
    from trends
),

classified as (
    select
        *,
        slope - t_interval * slope_se as slope_low,
        slope + t_interval * slope_se as slope_high,
        case
            when slope - t_trend * slope_se > 0 then 'filling'
            when slope + t_trend * slope_se < 0 then 'shrinking'
            else 'flat'
        end as trend
    from quantiles
),

joined as (
    select
        current_usage.*,
        history.observations,
        history.trend_since,
        history.history_hours,
        classified.fit_points,
        classified.slope,
        classified.slope_low,
        classified.slope_high,
        classified.trend,
        -- observation noise expressed in days at the fitted rate, at the interval's quantile
        classified.t_interval * observation_noise.noise_sd / nullif(classified.slope, 0)
            as noise_days,
        -- the fitted line pivots on its centroid, so each slope gives its own crossing time
        classified.x_mean,
        current_usage.quota - classified.y_mean as headroom_at_mean
    from current_usage
    left join history
        on current_usage.source = history.source
        and current_usage.volume_id = history.volume_id
        and current_usage.resource = history.resource
    left join classified
        on current_usage.source = classified.source
        and current_usage.volume_id = classified.volume_id
        and current_usage.resource = classified.resource
    left join observation_noise
        on current_usage.source = observation_noise.source
        and current_usage.volume_id = observation_noise.volume_id
        and current_usage.resource = observation_noise.resource
),

states as (
    select
        *,
        case
            when quota is null then 'unbounded'
            when current >= quota then 'full'
            when last_reconciled_at is null then 'insufficient_history'
            when $as_of - last_reconciled_at > $stale_after then 'stale'
            when slope is null
                or observations < $min_observations
                or history_hours < $min_history_hours then 'insufficient_history'
            else trend
        end as state
    from joined
),

days as (
    select
        *,
        case
            when state = 'full' then 0.0
            when quota is null or trend is distinct from 'filling'
                or state = 'insufficient_history' then null
            when headroom_at_mean <= 0 then 0.0
            else greatest(x_mean + headroom_at_mean / slope, 0.0)
        end as days_point,
        case
            when state = 'full' then 0.0
            when quota is null or trend is distinct from 'filling'
                or state = 'insufficient_history' then null
            when headroom_at_mean <= 0 then 0.0
            else greatest(x_mean + headroom_at_mean / slope_high - coalesce(noise_days, 0), 0.0)
        end as days_low,
        case
            when state = 'full' then 0.0
            when quota is null or trend is distinct from 'filling'
                or state = 'insufficient_history' then null
            when headroom_at_mean <= 0 then 0.0
            when slope_low <= 0 then null
            else greatest(x_mean + headroom_at_mean / slope_low + coalesce(noise_days, 0), 0.0)
        end as days_high
    from states
),

final as (
    select
        source,
        volume_id,
        resource,
        $as_of as as_of,
        current,
        quota,
        current / nullif(quota, 0) as utilization,
        case when state not in ('insufficient_history') then slope end as growth_per_day,
        case when days_point <= $max_forecast_days then days_point end as days_to_full,
        case when days_point <= $max_forecast_days
            then $as_of + to_microseconds(cast(days_point * 86400e6 as bigint))
        end as full_at,
        case when days_low <= $max_forecast_days then days_low end as days_to_full_low,
        case when days_high <= $max_forecast_days then days_high end as days_to_full_high,
        -- a significant but immaterial rise (full beyond the horizon) is no real trend
        case
            when state = 'filling' and (days_point is null or days_point > $max_forecast_days)
                then 'flat'
            else state
        end as state,
        case
            when days_point <= $critical_days then 'critical'
            when days_point <= $warning_days then 'warning'
            else 'ok'
        end as risk,
        trend_since,
        last_reconciled_at,
        observations,
        fit_points,
        case when state not in ('insufficient_history') then slope_low end
            as growth_per_day_low,
        case when state not in ('insufficient_history') then slope_high end
            as growth_per_day_high
    from days
)

select * from final
