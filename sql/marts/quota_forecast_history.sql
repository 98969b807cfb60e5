-- The builds' quota_forecast rows with their as_of and build time, so forecast accuracy can be
-- measured later: every build of the last $history_every_build_days days, and before that the
-- last build of each UTC day (hourly builds would otherwise grow this table by 24 forecasts per
-- volume and resource a day, all copied by every build). Rebuilding an as_of replaces that
-- as_of's rows; it never duplicates them.
-- grain: (as_of, source, volume_id, resource)
-- depends on: quota_forecast, previous_quota_forecast_history (source: the previous warehouse's
--   history, provided by the build engine; empty on the first build)
-- parameters: $as_of, $built_at, $history_every_build_days, $default_source
-- incremental: append (an incremental build keeps the table, drops this as_of's rows and the
--   older builds the model would not keep, and appends this build's rows)
-- columns: those of quota_forecast (as forecast by the build), and:
--   built_at: when the build that made the forecast ran
with

this_build as (
    select *, $built_at as built_at from quota_forecast
),

earlier_builds as (
    select * from previous_quota_forecast_history
    where as_of is distinct from $as_of
    qualify as_of >= $as_of - to_days(cast($history_every_build_days as integer))
        -- the session runs in UTC, so this is the UTC day
        or as_of = max(as_of) over (partition by cast(as_of as date))
),

combined as (
    select * from this_build
    union all by name
    select * from earlier_builds
),

final as (
    -- history kept from before sources existed has no source: it is the default source's
    select * replace (coalesce(source, $default_source) as source) from combined
)

select * from final
