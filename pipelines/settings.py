"""Constants in one place: cadence, horizons, thresholds. Run config may override some per run."""

from __future__ import annotations

from datetime import timedelta

#: Snapshot cadence in minutes (60 = hourly). 15, 20, 30 and 60 are supported.
DEFAULT_CADENCE_MINUTES = 60
#: One fetch of the API (every attempt and every wait between them) ends within this share of
#: the cadence by default (15 min when hourly), so a silent peer cannot hold a run into the next
#: window. `VOLCAP_FETCH_DEADLINE_SECONDS` overrides it.
FETCH_DEADLINE_SHARE_OF_CADENCE = 0.25
#: An attempt that receives no byte for this long has stalled (`VOLCAP_STALL_TIMEOUT_SECONDS`).
STALL_TIMEOUT_SECONDS = 30.0
#: The first partition the asset graph knows about.
PARTITIONS_START = "2024-01-01-00:00"

#: Forecast risk thresholds, in days to full.
CRITICAL_DAYS = 7.0
WARNING_DAYS = 30.0
#: A reconciliation older than this makes a forecast `stale`.
STALE_AFTER = timedelta(hours=24)
#: Fewer hours or observations than this is `insufficient_history`.
MIN_HISTORY_HOURS = 24
MIN_OBSERVATIONS = 4
#: Prediction interval coverage for days_to_full_low/high.
INTERVAL_COVERAGE = 0.80
#: Forecasts beyond this horizon are reported as null (no absurd dates).
MAX_FORECAST_DAYS = 3650

#: Snapshot quality gates (`LakeStore` may override them per run): a snapshot with more than
#: this share of rows quarantined fails...
MAX_QUARANTINE_SHARE = 0.01
#: ...as does one with fewer volumes than this share of the median of the last
#: `VOLUME_MEDIAN_WINDOW` landed snapshots (0 disables the rule).
MIN_VOLUME_SHARE = 0.5
VOLUME_MEDIAN_WINDOW = 24

#: Asset-check thresholds.
FRESHNESS_MAX_AGE = timedelta(hours=2)
ROW_DROP_WARN_SHARE = 0.15

#: Forecast fitting (see the README, "Forecasting method").
#: Usage history the trend is fitted on; whole weeks, so a weekly cycle does not tilt the fit.
FORECAST_WINDOW_DAYS = 28
#: A fit spanning at least this many days uses daily means instead of each reconciliation.
DAILY_FIT_MIN_DAYS = 7
#: One-sided confidence a slope needs to count as `filling` or `shrinking` (else `flat`).
TREND_CONFIDENCE = 0.95
#: A level shift (cleanup, delete) is a drop of at least this share of the previous value...
LEVEL_SHIFT_MIN_SHARE = 0.10
#: ...and at least this many times the median step between consecutive observations.
LEVEL_SHIFT_MIN_STEPS = 5.0
#: A change of growth rate (the best broken line since the level shift, on the fit's points) is
#: kept when it removes at least this share of the straight line's squared residuals...
TREND_BREAK_MIN_GAIN = 0.5
#: ...and at least this many points and days lie after the break (and those days before it).
TREND_BREAK_MIN_POINTS = 3
TREND_BREAK_MIN_DAYS = 2.0
#: Backtest alerts: a volume flagged to fill within a horizon counts as right when it fills
#: within the horizon plus this many days (forecast_accuracy).
BACKTEST_SLACK_DAYS = 2.0
#: The backtest replays the production forecast at this many daily origins at most (the latest
#: ones): each replay costs about one forecast, paid once per origin (README, "Forecasting
#: method").
BACKTEST_MAX_ORIGINS = 35
#: Interval calibration (forecast_calibration): scores from the forecasts of this many days
#: before the instant calibrated...
CALIBRATION_DAYS = 28
#: ...and a horizon bucket needs this many known outcomes for margins of its own.
CALIBRATION_MIN_SCORES = 30
#: The interval-coverage check: the 80% interval must hold the truth this often on the
#: backtest, overall and per horizon bucket...
INTERVAL_COVERAGE_BAND = (0.75, 0.85)
#: ...judged once this many calibrated intervals have a known outcome (per bucket too): at
#: 100, one binomial standard error is 4 points, so the band is not a coin toss.
INTERVAL_COVERAGE_MIN_SCORED = 100

#: quota_forecast_history keeps every build of the last this many days, and before that the
#: last build of each UTC day: hourly builds would otherwise add 24 forecasts per volume and
#: resource a day (263M rows a year at 10k volumes), copied by every build.
FORECAST_HISTORY_EVERY_BUILD_DAYS = 7

#: Asset-check windows: partitions and row counts are checked over this much recent history.
CHECK_RECENT_WINDOW = timedelta(days=1)

#: DuckDB's memory limit for a build, unless VOLCAP_BUILD_MEMORY_LIMIT sets one: this share of
#: the machine's physical memory, capped so a build (with Python and Parquet buffers beside
#: DuckDB) stays under ~2 GB of RSS; past the limit DuckDB spills under the data dir.
BUILD_MEMORY_SHARE = 0.25
BUILD_MEMORY_MAX_BYTES = 1536 * 2**20
BUILD_MEMORY_MIN_BYTES = 256 * 2**20
