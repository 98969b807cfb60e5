-- Every build's quota_forecast rows with their as_of and build time, so forecast accuracy can be
-- measured later. Rebuilding an as_of replaces that as_of's rows; it never duplicates them.
-- grain: (as_of, source, volume_id, resource)
-- depends on: quota_forecast, previous_quota_forecast_history (source: the previous warehouse's
--   history, provided by the build engine; empty on the first build)
-- parameters: $as_of, $built_at
with

this_build as (
    select *, $built_at as built_at from quota_forecast
),

earlier_builds as (
    select * from previous_quota_forecast_history
    where as_of is distinct from $as_of
),

combined as (
    select * from this_build
    union all by name
    select * from earlier_builds
),

final as (
    -- history kept from before sources existed has no source: it is the default source's
    select * replace (coalesce(source, 'default') as source) from combined
)

select * from final
