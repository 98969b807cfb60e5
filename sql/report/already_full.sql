-- Volumes at or over a byte or file-count quota, in volume_risk's risk_rank (fullest first).
-- grain: (source, volume_id)
-- depends on: volume_risk
-- parameters: $limit (most rows returned)
select * from volume_risk
where state = 'full'
order by risk_rank
limit $limit
