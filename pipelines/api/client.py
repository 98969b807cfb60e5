"""The Volumes API client: auth, retries, timeouts and streaming of `GET /v1/volumes` to a file.

Plain Python: no Dagster here (`pipelines.resources.VolumeApi` configures it for Dagster), so
the CLI, benches and tests use it as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipelines import __version__, redaction, settings
from pipelines.api.auth import OriginBoundBearer, is_loopback, origin, redacted_url
from pipelines.api.retry import (
    RETRYABLE_STATUSES,
    Progress,
    Retryable,
    parse_http_date,
    parse_retry_after,
)
from pipelines.contract import API_FIELDS

log = logging.getLogger(__name__)

MAX_SAME_ORIGIN_REDIRECTS = 3
#: An attempt failing this close to the deadline leaves no time for another.
_DEADLINE_SLACK = 0.05


class ApiError(RuntimeError):
    """The API could not be read; the message names the status or fault, never the key."""


class ContractError(ApiError):
    """The API answered, but not with what the contract promises."""


@dataclass(frozen=True)
class FetchResult:
    """What a fetch landed and what the sidecar records about it."""

    path: Path
    url: str
    status: int
    date: datetime | None
    fetched_at: datetime
    byte_count: int
    sha256: str
    attempts: int
    content_type: str


@dataclass(frozen=True)
class VolumesClient:
    """Reads `GET {base_url}/v1/volumes` with a field mask, streaming the body to a file.

    Retries 429 (honouring `Retry-After`), 5xx, stalls and connection errors with exponential
    backoff and jitter, all within one deadline; fails at once on other statuses. The key is
    only sent to the configured origin.
    """

    base_url: str
    token: str = field(repr=False)
    #: The environment variable the key came from, named in errors (never the key itself).
    token_env: str = "VOLCAP_API_TOKEN"
    connect_timeout: float = 5.0
    #: No byte for this long and the attempt has stalled (httpx's read timeout).
    stall_timeout: float = settings.STALL_TIMEOUT_SECONDS
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    #: Wall-clock limit for the whole fetch: every attempt, body and wait between attempts.
    fetch_deadline: float = (
        settings.DEFAULT_CADENCE_MINUTES * 60 * settings.FETCH_DEADLINE_SHARE_OF_CADENCE
    )
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: A `Retry-After` longer than this fails fast so the scheduler retries later.
    retry_after_cap: float = 120.0
    max_body_bytes: int = 4 * 1024**3
    verify_tls: bool = True
    #: how the client waits between attempts (tests pass a recorder)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    @property
    def volumes_url(self) -> str:
        return self.base_url.rstrip("/") + "/v1/volumes"

    def _check_url(self) -> httpx.URL:
        url = httpx.URL(self.volumes_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ApiError(f"the API URL must be http(s), got scheme {url.scheme!r}")
        if url.scheme == "http" and not is_loopback(url.host):
            raise ApiError(f"refusing plain http:// to non-loopback host {url.host}; use https://")
        if not self.token:
            raise ApiError(f"{self.token_env} is empty")
        redaction.register_secret(self.token)
        return url

    def _client(self, url: httpx.URL) -> httpx.Client:
        return httpx.Client(
            auth=OriginBoundBearer(self.token, origin(url)),
            headers={"User-Agent": f"volcap/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(
                connect=self.connect_timeout,
                read=self.stall_timeout,
                write=self.write_timeout,
                pool=self.pool_timeout,
            ),
            follow_redirects=False,
            verify=self.verify_tls,
            trust_env=False,
        )

    def fetch_to(self, dest: Path, fields: tuple[str, ...] = API_FIELDS) -> FetchResult:
        """Stream the volume list into `dest` (created or truncated). Raises ApiError."""
        url = self._check_url()
        params = {"fields": ",".join(fields)}
        started = time.monotonic()
        deadline = started + self.fetch_deadline
        reason = "max_attempts is below 1"
        with self._client(url) as client:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    return self._attempt(client, url, params, dest, attempt, deadline)
                except Retryable as exc:
                    failed = exc
                reason = failed.reason
                if failed.at_deadline or time.monotonic() >= deadline - _DEADLINE_SLACK:
                    raise self._gave_up(url, attempt, started, failed.reason, at_deadline=True)
                if attempt == self.max_attempts:
                    break
                delay = failed.retry_after
                if delay is not None and delay > self.retry_after_cap:
                    raise ApiError(
                        f"{failed.reason}: Retry-After {delay:.0f}s exceeds the cap of "
                        f"{self.retry_after_cap:.0f}s; giving up so the schedule retries later"
                    ) from None
                if delay is None:
                    delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                    delay *= random.uniform(0.5, 1.0)  # full-ish jitter
                if time.monotonic() + delay >= deadline:
                    raise self._gave_up(
                        url,
                        attempt,
                        started,
                        f"{failed.reason}; the next attempt, in {delay:.1f}s, would start past it",
                        at_deadline=True,
                    )
                log.warning(
                    "attempt %d failed (%s); retrying in %.2fs", attempt, failed.reason, delay
                )
                self.sleep(delay)
        raise self._gave_up(url, self.max_attempts, started, reason)

    def _gave_up(
        self,
        url: httpx.URL,
        attempts: int,
        started: float,
        reason: str,
        *,
        at_deadline: bool = False,
    ) -> ApiError:
        took = time.monotonic() - started
        limit = f" at the {self.fetch_deadline:g}s fetch deadline" if at_deadline else ""
        plural = "s" if attempts != 1 else ""
        return ApiError(
            f"gave up on {redacted_url(url)}{limit} after {attempts} attempt{plural} in "
            f"{took:.1f}s: {reason}"
        )

    def _timeout(self, deadline: float) -> httpx.Timeout:
        """httpx's timeouts, none reaching past the deadline.

        httpx has no timeout for a whole request, let alone several: the deadline bounds each
        wait here and is checked between chunks, so it is overrun by at most one stall timeout
        (less when the deadline is nearer).
        """
        remaining = max(deadline - time.monotonic(), 0.001)
        return httpx.Timeout(
            connect=min(self.connect_timeout, remaining),
            read=min(self.stall_timeout, remaining),
            write=min(self.write_timeout, remaining),
            pool=min(self.pool_timeout, remaining),
        )

    def _attempt(
        self,
        client: httpx.Client,
        url: httpx.URL,
        params: dict[str, str],
        dest: Path,
        attempt: int,
        deadline: float,
    ) -> FetchResult:
        progress = Progress(attempt, time.monotonic())
        target = url
        try:
            for _ in range(MAX_SAME_ORIGIN_REDIRECTS + 1):
                request = client.build_request(
                    "GET", target, params=params, timeout=self._timeout(deadline)
                )
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        location = response.headers.get("Location", "")
                        nxt = target.join(location)
                        if origin(nxt) != origin(url):
                            raise ApiError(
                                f"HTTP {response.status_code}: redirect to another origin "
                                f"({nxt.scheme}://{nxt.host}) not followed"
                            )
                        target = nxt.copy_with(query=None)
                        continue
                    return self._land(response, dest, deadline, progress)
                finally:
                    response.close()
            raise ApiError(f"more than {MAX_SAME_ORIGIN_REDIRECTS} redirects")
        except httpx.ReadTimeout:
            raise Retryable(progress.stalled()) from None
        except httpx.TimeoutException as exc:
            raise Retryable(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection error ({type(exc).__name__})") from None

    def _land(
        self, response: httpx.Response, dest: Path, deadline: float, progress: Progress
    ) -> FetchResult:
        progress.responded(response)
        status = response.status_code
        now = datetime.now(UTC)
        if status in RETRYABLE_STATUSES:
            raise Retryable(
                f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"), now)
            )
        called = redacted_url(response.request.url.copy_with(query=None))
        if status in (401, 403):
            raise ApiError(
                f"HTTP {status} from {called}: the key in {self.token_env} was "
                + ("rejected" if status == 401 else "not allowed to list volumes")
            )
        if status == 404:
            raise ApiError(
                f"HTTP 404 from {called}: no volumes endpoint there; VOLCAP_API_URL (or the "
                "source's url) must be the API's base URL, to which /v1/volumes is appended"
            )
        if status != 200:
            raise ApiError(f"HTTP {status} from {called}")
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            raise ContractError(
                f"HTTP 200 with Content-Type {content_type or 'missing'!r}, expected JSON"
            )
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ContractError(
                f"response of {int(declared)} bytes exceeds the cap of {self.max_body_bytes}"
            )
        digest = hashlib.sha256()
        size = 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with open(fd, "wb", buffering=0) as out:
            for chunk in response.iter_bytes():
                arrived = progress.last_byte_at = time.monotonic()
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise ContractError(f"response exceeds the cap of {self.max_body_bytes} bytes")
                if arrived > deadline:
                    raise Retryable(progress.still_arriving(), at_deadline=True)
                digest.update(chunk)
                out.write(chunk)
        if (
            declared
            and declared.isdigit()
            and response.headers.get("Content-Encoding", "identity") in ("identity", "")
            and size != int(declared)
        ):
            raise Retryable(f"truncated body: {size} of {declared} bytes")
        return FetchResult(
            path=dest,
            url=redacted_url(response.request.url),
            status=status,
            date=parse_http_date(response.headers.get("Date")),
            fetched_at=now,
            byte_count=size,
            sha256=digest.hexdigest(),
            attempts=progress.attempt,
            content_type=content_type,
        )
