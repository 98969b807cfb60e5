"""Configuration from the environment (`VOLCAP_*`), read and validated in one place.

Checked before Dagster is imported, so a mistake costs a fraction of a second and one line
naming the variable, its value and what is expected; Dagster's own config errors are long and
arrive seconds later. Imports nothing heavy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from pipelines import settings
from pipelines.sources import DEFAULT, Source, SourcesError, load_sources

DEFAULT_DATA_DIR = "./data"
SUPPORTED_CADENCES = (15, 20, 30, 60)
#: The path the client appends to the base URL.
VOLUMES_PATH = "/v1/volumes"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line naming it."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def cadence_minutes(environ: Mapping[str, str] | None = None) -> int:
    """`VOLCAP_CADENCE_MINUTES` (default hourly): one of 15, 20, 30 or 60."""
    raw = _env(environ).get("VOLCAP_CADENCE_MINUTES", "").strip()
    if not raw:
        return settings.DEFAULT_CADENCE_MINUTES
    expected = ", ".join(str(c) for c in SUPPORTED_CADENCES)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"VOLCAP_CADENCE_MINUTES={raw!r} is not a number of minutes; expected one of "
            f"{expected} (60 = hourly)"
        ) from None
    if value not in SUPPORTED_CADENCES:
        raise ConfigError(
            f"VOLCAP_CADENCE_MINUTES={value} is not supported; expected one of {expected}"
        )
    return value


def data_dir(environ: Mapping[str, str] | None = None) -> str:
    """`VOLCAP_DATA_DIR`: a local directory or `s3://bucket/prefix` (default ./data)."""
    return _env(environ).get("VOLCAP_DATA_DIR") or DEFAULT_DATA_DIR


def api_url(value: str, variable: str = "VOLCAP_API_URL") -> str:
    """A base URL the client can append `/v1/volumes` to, or ConfigError naming `variable`."""
    url = value.strip()
    if not url:
        raise ConfigError(
            f"{variable} is not set; expected the API's base URL, e.g. https://api.example.com "
            f"(the client calls $VOLCAP_API_URL{VOLUMES_PATH})"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{variable}={url!r} is not an http(s) URL; expected e.g. https://api.example.com"
        )
    path = parts.path.rstrip("/")
    if path.endswith(VOLUMES_PATH):
        base = url.rstrip("/")[: -len(VOLUMES_PATH)]
        raise ConfigError(
            f"{variable}={url!r} ends in {VOLUMES_PATH}, which the client appends itself; "
            f"expected the base URL: {base}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{variable}={url!r} has a query or fragment; expected a base URL")
    return url


def api_token(environ: Mapping[str, str] | None = None, variable: str = "VOLCAP_API_TOKEN") -> str:
    token = _env(environ).get(variable, "")
    if not token.strip():
        raise ConfigError(f"{variable} is not set; expected the API key (a bearer token)")
    return token


def sources(environ: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """The sources file named by `VOLCAP_SOURCES`, else the default source alone."""
    path = _env(environ).get("VOLCAP_SOURCES", "")
    if not path:
        return (DEFAULT,)
    try:
        return load_sources(path)
    except SourcesError as exc:
        raise ConfigError(str(exc)) from None


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def build_memory_limit(environ: Mapping[str, str] | None = None) -> str:
    """`VOLCAP_BUILD_MEMORY_LIMIT` (e.g. 1.5GB, 800MiB): DuckDB's memory limit for a build.
    Default: a share of physical memory (settings.BUILD_MEMORY_SHARE) within fixed bounds."""
    raw = _env(environ).get("VOLCAP_BUILD_MEMORY_LIMIT", "").strip()
    if raw:
        if not _MEMORY.match(raw):
            raise ConfigError(
                f"VOLCAP_BUILD_MEMORY_LIMIT={raw!r} is not an amount of memory; expected e.g. "
                "1.5GB or 800MiB"
            )
        return raw.replace(" ", "")
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not exposed on this platform
        physical = 4 * settings.BUILD_MEMORY_MAX_BYTES
    share = int(physical * settings.BUILD_MEMORY_SHARE)
    limit = max(settings.BUILD_MEMORY_MIN_BYTES, min(share, settings.BUILD_MEMORY_MAX_BYTES))
    return f"{limit // 2**20}MiB"


def dagster_home(environ: Mapping[str, str] | None = None) -> str:
    """`DAGSTER_HOME`: where Dagster records runs ("" when unset: runs are not recorded)."""
    return _env(environ).get("DAGSTER_HOME", "").strip()


def check_ingest(environ: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Everything `volcap ingest` needs, validated; the sources it will snapshot."""
    env = _env(environ)
    cadence_minutes(env)
    configured = sources(env)
    if configured == (DEFAULT,):
        api_url(env.get("VOLCAP_API_URL", ""))
        api_token(env)
    else:  # a source whose key is missing fails alone, at run time, naming its variable
        for source in configured:
            api_url(source.url, f"the url of source {source.name!r} in VOLCAP_SOURCES")
    return configured


def check_local(environ: Mapping[str, str] | None = None) -> None:
    """What every command reading the data dir needs (build, report, compact)."""
    env = _env(environ)
    cadence_minutes(env)
    sources(env)
    build_memory_limit(env)
