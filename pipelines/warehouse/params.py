"""Forecast parameters: the thresholds bound into the models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

from pipelines import settings
from pipelines.sources import DEFAULT_SOURCE
from pipelines.warehouse.schema import midnight


@dataclass(frozen=True)
class ForecastParams:
    """Thresholds bound into the models; defaults from `pipelines.settings`."""

    critical_days: float = settings.CRITICAL_DAYS
    warning_days: float = settings.WARNING_DAYS
    stale_after: timedelta = settings.STALE_AFTER
    min_history_hours: float = settings.MIN_HISTORY_HOURS
    min_observations: int = settings.MIN_OBSERVATIONS
    interval_coverage: float = settings.INTERVAL_COVERAGE
    trend_confidence: float = settings.TREND_CONFIDENCE
    max_forecast_days: float = settings.MAX_FORECAST_DAYS
    window_days: int = settings.FORECAST_WINDOW_DAYS
    daily_fit_days: float = settings.DAILY_FIT_MIN_DAYS
    shift_min_share: float = settings.LEVEL_SHIFT_MIN_SHARE
    shift_min_steps: float = settings.LEVEL_SHIFT_MIN_STEPS
    break_min_gain: float = settings.TREND_BREAK_MIN_GAIN
    break_min_points: int = settings.TREND_BREAK_MIN_POINTS
    break_min_days: float = settings.TREND_BREAK_MIN_DAYS
    backtest_slack_days: float = settings.BACKTEST_SLACK_DAYS
    history_every_build_days: int = settings.FORECAST_HISTORY_EVERY_BUILD_DAYS
    backtest_max_origins: int = settings.BACKTEST_MAX_ORIGINS
    calibration_days: int = settings.CALIBRATION_DAYS
    calibration_min_scores: int = settings.CALIBRATION_MIN_SCORES

    def bindings(self, as_of: datetime, built_at: datetime) -> dict[str, Any]:
        """Every named parameter a model may use."""
        normal = NormalDist()
        return {
            "as_of": as_of,
            "built_at": built_at,
            "default_source": DEFAULT_SOURCE,
            "critical_days": self.critical_days,
            "warning_days": self.warning_days,
            "stale_after": self.stale_after,
            "min_history_hours": self.min_history_hours,
            "min_observations": self.min_observations,
            "interval_coverage": self.interval_coverage,
            "z_interval": normal.inv_cdf(0.5 + self.interval_coverage / 2),
            "z_trend": normal.inv_cdf(self.trend_confidence),
            "max_forecast_days": self.max_forecast_days,
            "window_days": self.window_days,
            "daily_fit_days": self.daily_fit_days,
            "shift_min_share": self.shift_min_share,
            "shift_min_steps": self.shift_min_steps,
            "break_min_gain": self.break_min_gain,
            "break_min_points": self.break_min_points,
            "break_min_days": self.break_min_days,
            "backtest_slack_days": self.backtest_slack_days,
            "history_every_build_days": self.history_every_build_days,
            "backtest_max_origins": self.backtest_max_origins,
            "calibration_days": self.calibration_days,
            "calibration_min_scores": self.calibration_min_scores,
        }


def steps_horizon(as_of: datetime, params: ForecastParams) -> datetime:
    """The first instant `volume_observation_steps` keeps: a whole day before the forecast
    window, so that window and its first step are always inside it."""
    day = midnight(as_of.astimezone(UTC).date())
    return day - timedelta(days=params.window_days + 1)


#: The longest slope capacity_trends fits (`interval 30 day` in sql/marts/capacity_trends.sql).
TRENDS_WINDOW_DAYS = 30


def observations_horizon(as_of: datetime, params: ForecastParams) -> datetime:
    """The first instant `staging.volume_observations` keeps (besides the reconciliations seen
    since): a whole day before the longest window a model reads it over (capacity_trends' 30
    days, the forecast's steps), so the hourly history is not carried in every build's file."""
    day = midnight(as_of.astimezone(UTC).date())
    return day - timedelta(days=max(params.window_days, TRENDS_WINDOW_DAYS) + 1)
