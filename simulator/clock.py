"""Simulated time: instants as int64 microseconds since the Unix epoch (UTC), and their text forms."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

US = 1_000_000
HOUR_US = 3_600 * US
DAY_US = 86_400 * US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(at: datetime) -> int:
    """Exact microseconds since the epoch; a naive datetime is taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def parse_instant(text: str) -> datetime:
    """RFC 3339 / ISO 8601 text to an aware datetime (a missing offset means UTC)."""
    at = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def iso(at: datetime) -> str:
    """Canonical UTC text with microseconds only when needed, e.g. `2025-01-01T00:00:00Z`."""
    text = at.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def http_date(at: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. `Wed, 01 Jan 2025 00:00:00 GMT`."""
    return format_datetime(at.astimezone(UTC), usegmt=True)


class SimClock:
    """A settable clock; with `speed` > 0 it also runs at that many simulated seconds per real second.

    Readings are whole seconds, so an HTTP `Date` header (second precision) names exactly the
    instant the body describes.
    """

    def __init__(self, start: datetime, speed: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._base_us = to_us(start)
        self._base_real = time.monotonic()
        self.speed = float(speed)

    def now_us(self) -> int:
        with self._lock:
            us = self._base_us
            if self.speed > 0:
                us += int((time.monotonic() - self._base_real) * self.speed * US)
        return us - us % US

    def now(self) -> datetime:
        return from_us(self.now_us())

    def set(self, at: datetime) -> None:
        with self._lock:
            self._base_us = to_us(at)
            self._base_real = time.monotonic()

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self.speed > 0:
                self._base_us += int((time.monotonic() - self._base_real) * self.speed * US)
                self._base_real = time.monotonic()
            self._base_us += round(seconds * US)
