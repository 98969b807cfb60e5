"""Retries: which answers are retried, how long `Retry-After` asks to wait, and how far an
attempt got (for the one line that says why a fetch failed)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Retryable(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, *, at_deadline: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: the fetch's deadline has passed: no further attempt
        self.at_deadline = at_deadline


class Progress:
    """How far one attempt got, for the line that says why it failed."""

    def __init__(self, attempt: int, started: float) -> None:
        self.attempt = attempt
        self.last_byte_at = started
        self._response: httpx.Response | None = None

    def responded(self, response: httpx.Response) -> None:
        self._response = response
        self.last_byte_at = time.monotonic()

    def _received(self) -> str:
        assert self._response is not None
        declared = self._response.headers.get("Content-Length", "")
        of = f" of {declared}" if declared.isdigit() else ""
        return f"attempt {self.attempt} received {self._response.num_bytes_downloaded}{of} bytes"

    def stalled(self) -> str:
        silent = time.monotonic() - self.last_byte_at
        if self._response is None:
            return f"attempt {self.attempt} got no response headers in {silent:.1f}s"
        return f"{self._received()}, then stalled for {silent:.1f}s"

    def still_arriving(self) -> str:
        return f"{self._received()}, still arriving"
