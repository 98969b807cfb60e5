"""The key and the URL: bearer auth bound to one origin, loopback detection, redacted URLs."""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx


class OriginBoundBearer(httpx.Auth):
    """Bearer auth that is only ever attached to the configured origin.

    httpx keeps custom headers across redirects; binding the key to the origin here means
    no redirect, proxy or misconfiguration can carry it anywhere else.
    """

    def __init__(self, token: str, bound_to: tuple[str, str, int | None]) -> None:
        self._token = token
        self._origin = bound_to

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redacted_url(url: httpx.URL) -> str:
    """The URL without userinfo (the key travels in a header, but a user may paste it here)."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
