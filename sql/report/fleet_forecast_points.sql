-- The fleet forecast the report draws: fleet_forecast's days, nearest first.
-- grain: days_ahead
-- depends on: fleet_forecast
-- parameters: none
select * from fleet_forecast order by days_ahead
