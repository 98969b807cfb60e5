-- The origins the backtest scores: 00:00 UTC after each UTC day with reconciliations first seen
-- (forecast_daily_sums), up to the build's instant, the latest $backtest_max_origins of them.
-- Every method is scored on these same origins (forecast_backtest), so the backtest's size is
-- bounded whatever the lake's history; pipelines/replay.py replays the production forecast at
-- these and at the $calibration_days days before the first (forecast_calibration's evidence).
-- grain: (origin)
-- depends on: forecast_daily_sums
-- parameters: $as_of, $backtest_max_origins
-- columns:
--   origin: a scored origin (00:00 UTC of a day)
with

days as (
    -- the days first (the timestamptz cast of every row of the history cost ~40x more)
    select day
    from forecast_daily_sums
    -- origins up to the build's instant (the session runs in UTC)
    where day < cast($as_of as date)
    group by day
    order by day desc
    limit $backtest_max_origins
),

final as (
    select cast(day as timestamptz) + interval 1 day as origin
    from days
)

select * from final
