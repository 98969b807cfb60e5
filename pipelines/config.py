"""Configuration from the environment (`VOLCAP_*`), read and validated in one place.

Checked before Dagster is imported, so a mistake costs a fraction of a second and one line
naming the variable, its value and what is expected; Dagster's own config errors are long and
arrive seconds later. Imports nothing heavy.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from pipelines import redaction, settings
from pipelines.sources import DEFAULT, Source, SourcesError, load_sources, only_default

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


def _seconds(env: Mapping[str, str], variable: str, default: float, at_most: float) -> float:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= at_most:  # also refuses nan and inf
        raise ConfigError(
            f"{variable}={raw!r} is not a number of seconds above 0 and at most {at_most:g} "
            f"(one cadence window); expected e.g. {default:g} (the default)"
        )
    return value


def fetch_deadline_seconds(environ: Mapping[str, str] | None = None) -> float:
    """`VOLCAP_FETCH_DEADLINE_SECONDS`: the limit for one whole fetch, every attempt and wait
    included (default a quarter of the cadence); at most one cadence window."""
    env = _env(environ)
    window = cadence_minutes(env) * 60.0
    default = window * settings.FETCH_DEADLINE_SHARE_OF_CADENCE
    return _seconds(env, "VOLCAP_FETCH_DEADLINE_SECONDS", default, at_most=window)


def stall_timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """`VOLCAP_STALL_TIMEOUT_SECONDS`: an attempt receiving no byte for this long has stalled
    (default 30)."""
    env = _env(environ)
    window = cadence_minutes(env) * 60.0
    return _seconds(
        env, "VOLCAP_STALL_TIMEOUT_SECONDS", settings.STALL_TIMEOUT_SECONDS, at_most=window
    )


def data_dir(environ: Mapping[str, str] | None = None) -> str:
    """`VOLCAP_DATA_DIR`: a local directory or `s3://bucket/prefix` (default ./data)."""
    return _env(environ).get("VOLCAP_DATA_DIR") or DEFAULT_DATA_DIR


def cache_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """`VOLCAP_CACHE_DIR`: where an object-store data dir keeps its local copy (None: the
    default under `cache_home()`)."""
    return _env(environ).get("VOLCAP_CACHE_DIR") or None


def cache_home(environ: Mapping[str, str] | None = None) -> str | None:
    """`XDG_CACHE_HOME`, the user's cache root (None: ~/.cache)."""
    return _env(environ).get("XDG_CACHE_HOME") or None


def object_store_allows_http(environ: Mapping[str, str] | None = None) -> bool:
    """`AWS_ALLOW_HTTP=1|true`: an S3-compatible endpoint over plain http (local stores)."""
    return _env(environ).get("AWS_ALLOW_HTTP", "").lower() in ("1", "true")


def secret(variable: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the variable a key is read from ('' when unset), read when it is used."""
    return _env(environ).get(variable, "")


#: Environment variables whose values are secrets wherever they appear; a sources file adds
#: each source's `token_env` (`register_secret_env`, called when the file is loaded).
SECRET_ENV = ("VOLCAP_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def register_secret_env(variable: str) -> None:
    """Have the redactor mask this variable's value, read each time text is redacted."""
    redaction.register_secret_reader(variable, functools.partial(secret, variable))


for _variable in SECRET_ENV:
    register_secret_env(_variable)


def api_configured(environ: Mapping[str, str] | None = None) -> bool:
    """An API to snapshot is configured (`VOLCAP_API_URL` or a sources file): schedules and
    the build sensor run by default only then."""
    env = _env(environ)
    return bool(env.get("VOLCAP_API_URL") or env.get("VOLCAP_SOURCES"))


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
        loaded = load_sources(path)
    except SourcesError as exc:
        raise ConfigError(str(exc)) from None
    for source in loaded:
        register_secret_env(source.token_env)
    return loaded


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
    fetch_deadline_seconds(env)
    stall_timeout_seconds(env)
    configured = sources(env)
    if only_default(configured):
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
