-- Forecasts marked stale (no reconciliation within STALE_AFTER), oldest reconciliation first.
-- grain: (source, volume_id, resource)
-- depends on: quota_forecast, volumes
-- parameters: none
select forecast.source, forecast.volume_id, volumes.name, forecast.resource,
    volumes.last_reconciled_at
from quota_forecast as forecast
inner join volumes
    on forecast.source = volumes.source
    and forecast.volume_id = volumes.volume_id
where forecast.state = 'stale'
order by volumes.last_reconciled_at, forecast.volume_id, forecast.resource
