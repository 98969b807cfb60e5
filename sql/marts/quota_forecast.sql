-- Time to full per active volume and resource ('bytes' against max_size_bytes, 'inodes'
-- against max_file_count), with an 80% interval. Method and states: README, "Forecasting method".
-- Usage is fitted on reconciliations (volume_observations) after the latest level shift in the
-- window, as daily means once the fit spans a week; the trend must be significant to count.
-- A change of growth rate since then (the best broken line, when it explains enough of the
-- line's residuals) restarts the fit at the break: the current regime, not an average of two.
-- The model's 80% interval is then calibrated on the backtest's outcomes: each end moved by
-- the margins forecast_calibration found at the latest origin for the forecast's horizon bucket
-- and kind.
-- The window is the last $window_days UTC days, the last one ending at as_of, and the daily
-- means are those of UTC days: their moments come from forecast_day_moments, kept once per day,
-- so a forecast adds up ~one row per volume and day; only the steps (for level shifts) and the
-- few series fitted on single reconciliations read volume_observation_steps' rows.
-- grain: (source, volume_id, resource) for volumes in their source's latest snapshot
-- depends on: volumes, volume_observation_steps, forecast_day_moments, forecast_calibration
-- parameters: $as_of, $window_days, $daily_fit_days, $shift_min_share, $shift_min_steps,
--   $break_min_gain, $break_min_points, $break_min_days,
--   $z_interval, $z_trend, $min_history_hours, $min_observations, $stale_after,
--   $max_forecast_days, $critical_days, $warning_days
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` (against max_size_bytes) or `inodes` (against max_file_count)
--   as_of: the build's as_of: the latest snapshot_at in the lake
--   current: latest usage of the resource
--   quota: current quota; null = unlimited
--   utilization: current / quota
--   growth_per_day: fitted trend, units per day
--   growth_per_day_low: lower bound of the trend's 80% interval
--   growth_per_day_high: upper bound of the trend's 80% interval
--   trend_break: true when the fit starts at a change of growth rate (not a level shift)
--   growth_per_day_before: the growth rate before that change; null without a break
--   kind: how far the fit can be trusted, known at as_of (forecast_calibration calibrates each
--     kind apart): `short` (the fit spans under $daily_fit_days days: a young volume, or a
--     recent level shift or change of rate), `rate_change` (fitted since a change of growth
--     rate), `shifted` (since a level shift in the window), `noisy` (the whole window, the
--     growth's 80% interval wider than ±5% of it) or `steady` (the whole window, a tighter one)
--   interval_calibrated: the 80% interval is calibrated on the backtest's known outcomes
--     (forecast_calibration); false: the model's own interval (too few outcomes known yet)
--   days_to_full: days until the trend meets the current quota; null when not filling
--   full_at: as_of + days_to_full
--   days_to_full_low: earliest fill in the 80% interval (from growth_per_day_high, calibrated)
--   days_to_full_high: latest fill in the 80% interval (calibrated); null when unbounded: the
--     growth's lower bound is not positive, or the backtest found no finite late end that
--     holds 90% of fills
--   state: `filling`, `flat`, `shrinking`, `full`, `unbounded`, `insufficient_history` or
--     `stale`
--   risk: `critical` (full within 7 days), `warning` (within 30 days) or `ok`
--   trend_since: start of the fit: the first observation after the latest level shift in the
--     window, or after the latest change of growth rate when there is one
--   last_reconciled_at: the latest reconciliation
--   observations: reconciliations since trend_since
--   fit_points: points in the fit (daily means once the fit spans a week)
with

active_volumes as (
    select * from volumes where is_active
),

observations as not materialized (
    -- volume_observations, each beside the observation before it: kept by the build engine
    -- (pipelines/warehouse/incremental.py `update_observation_steps`) from the first changed
    -- day on, so a build no longer sorts the whole window. Read whole only for the steps that
    -- drop by a level shift's share, and for the few series fitted on them (`detailed`).
    -- The fit's daily buckets are UTC days, each from after its 00:00 to the next 00:00: the
    -- last $window_days of them, the last one ending at as_of (partial unless as_of is 00:00
    -- UTC, as every replayed origin is: then they are the $window_days days before it). Their
    -- start is written out, not read from a CTE: a constant the scan filters on (a scalar
    -- subquery joined every row of the window to it, in each of the three reads)
    select
        * exclude (previous_reconciled_at, used_bytes_previous, inode_count_previous),
        -- the step from the observation before, when that one is in the window too
        case when previous_reconciled_at > cast(cast($as_of - interval 1 microsecond as date)
                - cast($window_days as integer) + 1 as timestamptz)
            then used_bytes_previous end as used_bytes_previous,
        case when previous_reconciled_at > cast(cast($as_of - interval 1 microsecond as date)
                - cast($window_days as integer) + 1 as timestamptz)
            then inode_count_previous end as inode_count_previous
    from volume_observation_steps
    where reconciled_at > cast(cast($as_of - interval 1 microsecond as date)
            - cast($window_days as integer) + 1 as timestamptz)
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

moment_cells as (
    -- the window's moments (forecast_day_moments: one row per bucket and day first seen), x
    -- now relative to as_of
    select
        source, volume_id, day, n, first_reconciled_at, x_ss, bytes_y, bytes_xy, bytes_ss,
        inodes_y, inodes_xy, inodes_ss,
        day_x + x as x,
        day_x + x_min as x_min,
        day_x + x_max as x_max
    from (
        select *, (epoch(cast(day as timestamptz)) - epoch($as_of)) / 86400.0 as day_x
        from forecast_day_moments
        -- the window's first day (see `observations`)
        where day >= cast($as_of - interval 1 microsecond as date)
            - cast($window_days as integer) + 1
    )
),

bucket_means as (
    select
        source,
        volume_id,
        day,
        sum(n * x) / sum(n) as x,
        sum(n * bytes_y) / sum(n) as bytes_y,
        sum(n * inodes_y) / sum(n) as inodes_y
    from moment_cells
    group by source, volume_id, day
),

volume_days as (
    -- per volume and daily bucket, the moments of both resources, combined exactly (the
    -- parallel-variance formulas: each day first seen adds its own spread and its mean's
    -- distance from the bucket's)
    select
        cells.source,
        cells.volume_id,
        cells.day,
        cast(sum(cells.n) as bigint) as n,
        any_value(means.x) as x,
        min(cells.x_min) as x_min,
        max(cells.x_max) as x_max,
        min(cells.first_reconciled_at) as first_reconciled_at,
        sum(cells.x_ss + cells.n * (cells.x - means.x) * (cells.x - means.x)) as x_ss,
        any_value(means.bytes_y) as bytes_y,
        sum(cells.bytes_xy + cells.n * (cells.x - means.x) * (cells.bytes_y - means.bytes_y))
            as bytes_xy,
        sum(cells.bytes_ss
            + cells.n * (cells.bytes_y - means.bytes_y) * (cells.bytes_y - means.bytes_y))
            as bytes_ss,
        any_value(means.inodes_y) as inodes_y,
        sum(cells.inodes_xy + cells.n * (cells.x - means.x) * (cells.inodes_y - means.inodes_y))
            as inodes_xy,
        sum(cells.inodes_ss
            + cells.n * (cells.inodes_y - means.inodes_y) * (cells.inodes_y - means.inodes_y))
            as inodes_ss
    from moment_cells as cells
    inner join bucket_means as means
        on cells.source = means.source
        and cells.volume_id = means.volume_id
        and cells.day = means.day
    group by cells.source, cells.volume_id, cells.day
),

day_buckets as (
    select source, volume_id, 'bytes' as resource, day, n, x, x_min, x_max,
        first_reconciled_at, x_ss, bytes_y as y, bytes_xy as xy, bytes_ss as yy
    from volume_days
    union all
    select source, volume_id, 'inodes', day, n, x, x_min, x_max, first_reconciled_at, x_ss,
        inodes_y, inodes_xy, inodes_ss
    from volume_days
),

drop_steps as (
    -- one pass over the steps: the volumes with a step down by a level shift's share
    select
        source,
        volume_id,
        bool_or(used_bytes_previous - used_bytes > $shift_min_share * used_bytes_previous)
            as bytes_dropped,
        bool_or(inode_count_previous - inode_count > $shift_min_share * inode_count_previous)
            as inodes_dropped
    from observations
    where used_bytes_previous - used_bytes > $shift_min_share * used_bytes_previous
        or inode_count_previous - inode_count > $shift_min_share * inode_count_previous
    group by source, volume_id
),

drops as (
    -- the series with such a step: a level shift is among these
    select source, volume_id, 'bytes' as resource, true as dropped
    from drop_steps where bytes_dropped
    union all
    select source, volume_id, 'inodes', true
    from drop_steps where inodes_dropped
),

series as materialized (
    -- materialized: series_key, a number per series that the windows below partition by (a
    -- sort on one integer instead of three strings), must be the same wherever it is read
    select
        source,
        volume_id,
        resource,
        row_number() over () as series_key,
        cast(sum(n) as bigint) as observations,
        min(first_reconciled_at) as trend_since,
        (max(x_max) - min(x_min)) * 24 as history_hours,
        (max(x_max) - min(x_min)) * 24 < 24 * $daily_fit_days
            or coalesce(bool_or(dropped), false) as detailed
    from day_buckets
    left join drops using (source, volume_id, resource)
    group by source, volume_id, resource
),

-- Most series fit on their daily buckets from start to end: volume_days gives those buckets,
-- their history and (from the moments) their observation noise. The rest — a series with a
-- drop that may be a level shift, one under a week (fitted on each reconciliation), one with a
-- change of growth rate — read their observations again, below; only those are few.

detailed_observations as (
    select
        *,
        -- x: days relative to as_of (negative = before it)
        (epoch(reconciled_at) - epoch($as_of)) / 86400.0 as x,
        -- its daily bucket (forecast_day_moments' day; a UTC day without ICU's time zone conversion)
        cast(make_timestamp(epoch_us(reconciled_at) - 1) as date) as day
    from (
        -- x and day computed for these rows only (a filter is not pushed below them)
        select observations.*
        from observations
        semi join (select distinct source, volume_id from series where detailed) as detailed
            using (source, volume_id)
    )
),

steps as (
    select source, volume_id, 'bytes' as resource, reconciled_at, x, day,
        cast(used_bytes as double) as y, cast(used_bytes_previous as double) as y_previous
    from detailed_observations
    union all
    select source, volume_id, 'inodes', reconciled_at, x, day, cast(inode_count as double),
        cast(inode_count_previous as double)
    from detailed_observations
),

points as (
    select steps.source, steps.volume_id, steps.resource, steps.reconciled_at, steps.x,
        steps.day, steps.y, series.series_key
    from steps
    inner join series
        on steps.source = series.source
        and steps.volume_id = series.volume_id
        and steps.resource = series.resource
        and series.detailed
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

since_shift as (
    select points.*
    from points
    left join level_shifts
        on points.source = level_shifts.source
        and points.volume_id = level_shifts.volume_id
        and points.resource = level_shifts.resource
    where points.x >= coalesce(level_shifts.shift_x, -1e9)
),

shift_history as (
    select source, volume_id, resource, observations, trend_since, history_hours
    from series
    where not detailed
    union all
    select
        source,
        volume_id,
        resource,
        count(*) as observations,
        min(reconciled_at) as trend_since,
        (max(x) - min(x)) * 24 as history_hours
    from since_shift
    group by source, volume_id, resource
),

shift_buckets as (
    -- daily means once the fit spans a week: daily and weekly cycles average out instead of
    -- looking like trends, and hourly noise no longer inflates the sample size
    select day_buckets.source, day_buckets.volume_id, day_buckets.resource, day_buckets.x,
        day_buckets.y, 0.5 as half_width, series.series_key
    from day_buckets
    inner join series
        on day_buckets.source = series.source
        and day_buckets.volume_id = series.volume_id
        and day_buckets.resource = series.resource
        and not series.detailed
    union all
    select
        since_shift.source,
        since_shift.volume_id,
        since_shift.resource,
        avg(x) as x,
        avg(y) as y,
        -- half a bucket: a break found at a daily mean may lie up to there
        0.5 as half_width,
        since_shift.series_key
    from since_shift
    semi join shift_history
        on since_shift.source = shift_history.source
        and since_shift.volume_id = shift_history.volume_id
        and since_shift.resource = shift_history.resource
        and shift_history.history_hours >= 24 * $daily_fit_days
    group by
        since_shift.source, since_shift.volume_id, since_shift.resource, since_shift.series_key,
        day
    union all
    -- a fit under a week: each reconciliation is a point of its own (one per instant, so not
    -- grouped: a group of one row is that row, and grouping every reconciliation cost more
    -- than the break search over them)
    select since_shift.source, since_shift.volume_id, since_shift.resource, x, y,
        0.0 as half_width, since_shift.series_key
    from since_shift
    semi join shift_history
        on since_shift.source = shift_history.source
        and since_shift.volume_id = shift_history.volume_id
        and since_shift.resource = shift_history.resource
        and shift_history.history_hours < 24 * $daily_fit_days
),

centered as (
    -- centred per series, so the sums of squares below keep their precision
    select
        source,
        volume_id,
        resource,
        x,
        half_width,
        x - avg(x) over series as xc,
        y - avg(y) over series as yc,
        count(*) over series as n,
        min(x) over series as x_first,
        max(x) over series as x_last,
        series_key
    from shift_buckets
    window series as (partition by series_key)
),

suffix_sums as (
    -- for each candidate breakpoint c (a point's x), the sums over the points from c on
    select
        *,
        count(*) over later as r_n,
        sum(xc) over later as r_x,
        sum(yc) over later as r_y,
        sum(xc * xc) over later as r_xx,
        sum(xc * yc) over later as r_xy,
        sum(xc * xc) over series as s_xx,
        sum(xc * yc) over series as s_xy,
        sum(yc * yc) over series as s_yy
    from centered
    window
        series as (partition by series_key),
        later as (
            partition by series_key order by x desc
            rows between unbounded preceding and current row
        )
),

hinge_sums as (
    -- a broken line y = a + b1 x + b2 (x - c)+ (continuous at c: a change of rate, not of
    -- level) is a line plus one regressor h = (x - c)+, whose sums come from the suffix sums;
    -- partialling x out of h and y gives its gain over the line in closed form
    select
        *,
        (r_x - xc * r_n) as h,
        (r_xx - 2 * xc * r_x + xc * xc * r_n) as hh,
        (r_xx - xc * r_x) as hx,
        (r_xy - xc * r_y) as hy
    from suffix_sums
    where s_xx > 0
),

hinges as (
    select
        source,
        volume_id,
        resource,
        series_key,
        x as break_x,
        half_width,
        n,
        r_n,
        s_xx,
        s_xy,
        s_yy - s_xy * s_xy / s_xx as sse_line,
        hy - hx * s_xy / s_xx as hy_x,
        hh - h * h / n - hx * hx / s_xx as hh_x,
        hx
    from hinge_sums
    where r_n >= $break_min_points
        and x_last - x >= $break_min_days
        and x - x_first >= $break_min_days
),

breaks as (
    -- the breakpoint that explains most of the line's residuals, kept only when it explains
    -- at least $break_min_gain of them: steady growth, noise and cycles leave the line alone.
    -- The new regime is fitted from the end of the break's daily bucket: a day of the old rate
    -- in the fit would tilt it more than a day less of the new one
    select
        source,
        volume_id,
        resource,
        arg_max(break_x + half_width, hy_x * hy_x / hh_x) as break_x,
        arg_max((s_xy - hy_x / hh_x * hx) / s_xx, hy_x * hy_x / hh_x) as growth_before,
        series_key
    from hinges
    where hh_x > 0 and sse_line > 0
    group by source, volume_id, resource, series_key
    having max(hy_x * hy_x / hh_x / sse_line) >= $break_min_gain
),

broken as (
    -- per broken volume, where each resource's current regime starts (null: no break)
    select
        source,
        volume_id,
        any_value(break_x) filter (where resource = 'bytes') as bytes_break_x,
        any_value(break_x) filter (where resource = 'inodes') as inodes_break_x,
        any_value(series_key) filter (where resource = 'bytes') as bytes_series_key,
        any_value(series_key) filter (where resource = 'inodes') as inodes_series_key
    from breaks
    group by source, volume_id
),

break_observations as (
    -- the observations of the broken volumes from their earliest break on, read once for both
    -- resources
    select *
    from (
        select
            observations.*,
            broken.bytes_break_x,
            broken.inodes_break_x,
            broken.bytes_series_key,
            broken.inodes_series_key,
            (epoch(observations.reconciled_at) - epoch($as_of)) / 86400.0 as x,
            cast(make_timestamp(epoch_us(observations.reconciled_at) - 1) as date) as day
        from observations
        inner join broken
            on observations.source = broken.source
            and observations.volume_id = broken.volume_id
    )
    where x >= least(bytes_break_x, inodes_break_x)
),

break_points as (
    -- the break lies after any level shift (it is found among the points since it)
    select source, volume_id, 'bytes' as resource, reconciled_at, x, day,
        cast(used_bytes as double) as y, bytes_series_key as series_key
    from break_observations
    where x >= bytes_break_x
    union all
    select source, volume_id, 'inodes', reconciled_at, x, day, cast(inode_count as double),
        inodes_series_key
    from break_observations
    where x >= inodes_break_x
),

break_history as (
    select
        source,
        volume_id,
        resource,
        count(*) as observations,
        min(reconciled_at) as trend_since,
        (max(x) - min(x)) * 24 as history_hours
    from break_points
    group by source, volume_id, resource
),

history as (
    select * from shift_history
    anti join breaks using (source, volume_id, resource)
    union all
    select * from break_history
),

buckets as (
    -- series without a break keep their buckets; the current regime of the others is
    -- bucketed again (a fit under a week uses each reconciliation)
    select source, volume_id, resource, x, y, series_key from shift_buckets
    anti join breaks using (source, volume_id, resource)
    union all
    select break_points.source, break_points.volume_id, break_points.resource, avg(x) as x,
        avg(y) as y, break_points.series_key
    from break_points
    semi join break_history
        on break_points.source = break_history.source
        and break_points.volume_id = break_history.volume_id
        and break_points.resource = break_history.resource
        and break_history.history_hours >= 24 * $daily_fit_days
    group by
        break_points.source, break_points.volume_id, break_points.resource,
        break_points.series_key, day
    union all
    -- under a week: each reconciliation, as in shift_buckets
    select break_points.source, break_points.volume_id, break_points.resource, x, y,
        break_points.series_key
    from break_points
    semi join break_history
        on break_points.source = break_history.source
        and break_points.volume_id = break_history.volume_id
        and break_points.resource = break_history.resource
        and break_history.history_hours < 24 * $daily_fit_days
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
    -- an observation does, not when the mean line does, so the interval carries this spread.
    -- A series fitted on its whole window takes it from its daily moments: a day's squared
    -- residuals are its own spread around its mean, tilted by the line, plus its mean's.
    select
        day_buckets.source,
        day_buckets.volume_id,
        day_buckets.resource,
        coalesce(sqrt(greatest(
            sum(
                day_buckets.yy - 2 * fits.slope * day_buckets.xy
                + fits.slope * fits.slope * day_buckets.x_ss
                + day_buckets.n
                * (day_buckets.y - fits.intercept - fits.slope * day_buckets.x) ^ 2
            )
            - sum(day_buckets.n * (day_buckets.y - fits.intercept - fits.slope * day_buckets.x))
            ^ 2 / sum(day_buckets.n),
            0.0
        ) / nullif(sum(day_buckets.n) - 1, 0)), 0.0) as noise_sd
    from day_buckets
    inner join series
        on day_buckets.source = series.source
        and day_buckets.volume_id = series.volume_id
        and day_buckets.resource = series.resource
        and not series.detailed
    inner join fits
        on day_buckets.source = fits.source
        and day_buckets.volume_id = fits.volume_id
        and day_buckets.resource = fits.resource
    anti join breaks
        on day_buckets.source = breaks.source
        and day_buckets.volume_id = breaks.volume_id
        and day_buckets.resource = breaks.resource
    group by day_buckets.source, day_buckets.volume_id, day_buckets.resource
    union all
    select
        fit_points.source,
        fit_points.volume_id,
        fit_points.resource,
        coalesce(stddev_samp(fit_points.y - (fits.intercept + fits.slope * fit_points.x)), 0.0)
            as noise_sd
    from (
        select * from since_shift
        anti join breaks using (source, volume_id, resource)
        union all
        select * from break_points
    ) as fit_points
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
        buckets.y - (fits.intercept + fits.slope * buckets.x) as residual,
        buckets.series_key
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
        select *, lag(residual) over (partition by series_key order by x) as residual_previous
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
        breaks.break_x is not null as trend_break,
        breaks.growth_before,
        level_shifts.shift_x is not null as level_shift,
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
    left join breaks
        on current_usage.source = breaks.source
        and current_usage.volume_id = breaks.volume_id
        and current_usage.resource = breaks.resource
    left join level_shifts
        on current_usage.source = level_shifts.source
        and current_usage.volume_id = level_shifts.volume_id
        and current_usage.resource = level_shifts.resource
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
        -- how far the fit can be trusted, known at as_of: what forecast_calibration tells apart
        -- (a forecast's own record differs by these: a young or just-broken fit overshoots
        -- the rate, a precise one fills on time)
        case
            when history_hours is null then null
            when history_hours < 24 * $daily_fit_days then 'short'
            when trend_break then 'rate_change'
            when level_shift then 'shifted'
            when slope_high - slope > 0.05 * abs(slope) then 'noisy'
            else 'steady'
        end as kind,
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
        -- the interval calibrated on the backtest (forecast_calibration, README "Forecasting
        -- method"): each end moved out by its margin times the predicted days
        case when calibrated_low <= $max_forecast_days then calibrated_low end
            as days_to_full_low,
        case when calibrated_high <= $max_forecast_days then calibrated_high end
            as days_to_full_high,
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
            as growth_per_day_high,
        trend_break,
        case when trend_break then growth_before end as growth_per_day_before,
        kind,
        coalesce(calibrated_from, 'none') <> 'none' and days_low is not null
            as interval_calibrated
    from days
    left join (
        select
            source as calibration_source,
            kind as calibration_kind,
            above_days,
            up_to_days,
            calibrated_from,
            -- greatest() and least() skip nulls: an unbounded end stays null explicitly
            case when calibrated_from <> 'none' then margin_low else 0.0 end as margin_low,
            case when calibrated_from <> 'none' then margin_high else 0.0 end as margin_high,
            late_unbounded and calibrated_from <> 'none' as late_unbounded
        from forecast_calibration
        -- the latest origin's: outcomes known by the start of the day
        qualify calibrated_at = max(calibrated_at) over (partition by source)
    ) as calibration
        on days.source = calibration.calibration_source
        and days.kind = calibration.calibration_kind
        and (
            days.days_point > calibration.above_days
            and (calibration.up_to_days is null or days.days_point <= calibration.up_to_days)
            or (calibration.above_days = 0 and days.days_point = 0)
        )
    cross join lateral (
        select
            case
                when days.state = 'full' or days.days_low is null then days.days_low
                else greatest(least(
                    days.days_low
                        - coalesce(calibration.margin_low, 0.0) * greatest(days.days_point, 1 / 24),
                    days.days_point
                ), 0.0)
            end as calibrated_low,
            case
                when days.state = 'full' or days.days_high is null then days.days_high
                when calibration.late_unbounded then null
                else greatest(
                    days.days_high
                        + coalesce(calibration.margin_high, 0.0) * greatest(days.days_point, 1 / 24),
                    days.days_point
                )
            end as calibrated_high
    )
)

select * from final
