-- Rows of quota_forecast that break forecast sanity: a negative days_to_full (or bound), or
-- days_to_full_low <= days_to_full <= days_to_full_high violated.
-- grain: (source, volume_id, resource)
-- depends on: quota_forecast
-- parameters: none
select source, volume_id, resource, days_to_full_low, days_to_full, days_to_full_high
from quota_forecast
where days_to_full < 0 or days_to_full_low < 0 or days_to_full_high < 0
    or days_to_full_low > days_to_full or days_to_full > days_to_full_high
order by source, volume_id, resource
