-- Forecast receipts for the whole deployment: forecast_accuracy with its sources added up per
-- method and horizon bucket (the report's "How good are these forecasts", the backtest
-- assets' Dagster metadata, the interval-coverage check and the demo's one line).
-- grain: (method, horizon)
-- depends on: forecast_accuracy
-- parameters: none
select
    method,
    horizon,
    sum(forecasts) as forecasts,
    sum(scored) as scored,
    sum(mae_days * scored) / nullif(sum(scored) filter (where mae_days is not null), 0)
        as mae_days,
    -- several sources: medians of the sources' medians
    median(median_ape) as median_ape,
    sum(intervals_scored) as intervals_scored,
    sum(coverage_80 * intervals_scored) / nullif(sum(intervals_scored), 0)
        as coverage_80,
    median(median_lead_days) as median_lead_days,
    avg(alert_precision) as alert_precision,
    avg(alert_recall) as alert_recall,
    avg(false_alarms_per_1000_volume_days) as false_alarms_per_1000_volume_days
from forecast_accuracy
group by all
order by horizon, mae_days nulls last, method
