-- The origins the backtest scores: 00:00 UTC after each UTC day with reconciliations first seen
-- (volume_observations), up to the build's instant, the latest $backtest_max_origins of them.
-- Every method is scored on these same origins (forecast_backtest), so the backtest's size is
-- bounded whatever the lake's history; pipelines/replay.py replays the production forecast at
-- these and at the $calibration_days days before the first (forecast_calibration's evidence).
-- grain: (origin)
-- depends on: volume_observations
-- parameters: $as_of, $backtest_max_origins
-- columns:
--   origin: a scored origin (00:00 UTC of a day)
with

days as (
    -- the days first (the timestamptz cast of every row of the history cost ~40x more). The
    -- kept observations hold every such day from the oldest origin on (kept_horizon in
    -- pipelines/warehouse/incremental.py)
    select cast(first_seen_at as date) as day
    from (
        -- the instants first: a timestamptz's day is a time zone conversion (ICU), ~10x the
        -- cost of the scan if made for every row
        select first_seen_at
        from volume_observations
        -- origins up to the build's instant (the session runs in UTC)
        where first_seen_at < cast(cast($as_of as date) as timestamptz)
        group by first_seen_at
    )
    group by day
    order by day desc
    limit $backtest_max_origins
),

final as (
    select cast(day as timestamptz) + interval 1 day as origin
    from days
)

select * from final
