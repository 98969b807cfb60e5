"""What a source (fleet) is: its name, its sources-file entry, and where it shows in names.

A sources file (`VOLCAP_SOURCES`) names each fleet, its API's base URL and the *name* of the
environment variable holding its key; the key itself is read from the environment at run time
only, so it never lands in the file, run config, metadata or logs. Without a file there is one
source, `default`, configured by `VOLCAP_API_URL` and `VOLCAP_API_TOKEN` as before.

The default source is the compatibility case, and this module alone spells it out: its files,
folders and partition keys are those of a deployment from before sources existed (no source in
them at all), and data from that time, which has no `source` column, is the default source's.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The source a deployment without a sources file has; its paths carry no source at all.
DEFAULT_SOURCE = "default"
#: A source name: safe in a file name and a directory name, never a path.
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = frozenset({"name", "url", "token_env"})


class SourcesError(ValueError):
    """The sources file is missing or invalid; the message is one line naming the problem."""


@dataclass(frozen=True)
class Source:
    """One fleet: its name, its API's base URL (or the variable holding it) and the variable
    holding its key."""

    name: str
    token_env: str
    url: str = ""
    #: the environment variable holding the URL when `url` is empty (the default source)
    url_env: str = ""


#: The source of a deployment without a sources file.
DEFAULT = Source(DEFAULT_SOURCE, token_env="VOLCAP_API_TOKEN", url_env="VOLCAP_API_URL")


def load_sources(path: str | Path) -> tuple[Source, ...]:
    """Read and validate a sources file; SourcesError with a one-line reason otherwise."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SourcesError(f"sources file {path} not found (VOLCAP_SOURCES)") from None
    except OSError as exc:
        raise SourcesError(f"cannot read sources file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourcesError(f"sources file {path} is not valid TOML: {exc}") from None
    entries = document.get("sources")
    if not isinstance(entries, list) or not entries:
        raise SourcesError(f"sources file {path} has no [[sources]] entries")
    sources: list[Source] = []
    for number, entry in enumerate(entries, 1):
        where = f"sources file {path}, source #{number}"
        if not isinstance(entry, dict):
            raise SourcesError(f"{where}: not a table")
        name = entry.get("name")
        if not isinstance(name, str) or not SOURCE_NAME.match(name):
            raise SourcesError(
                f"{where}: name {name!r} must match {SOURCE_NAME.pattern} "
                "(lowercase letters, digits, - and _, at most 32)"
            )
        where = f"sources file {path}, source {name!r}"
        if "token" in entry:
            raise SourcesError(
                f"{where}: a key does not belong in the file; put it in an environment "
                "variable and name that variable in token_env"
            )
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise SourcesError(f"{where}: unknown keys {unknown} (expected name, url, token_env)")
        url = entry.get("url")
        if not isinstance(url, str) or not url.strip():
            raise SourcesError(f"{where}: missing url")
        if not url.startswith(("https://", "http://")):
            raise SourcesError(f"{where}: url must start with https:// (or http:// on loopback)")
        token_env = entry.get("token_env")
        if not isinstance(token_env, str) or not token_env:
            raise SourcesError(f"{where}: missing token_env (the environment variable's name)")
        if not _ENV_NAME.match(token_env):
            raise SourcesError(f"{where}: token_env {token_env!r} is not a variable name")
        if any(s.name == name for s in sources):
            raise SourcesError(f"sources file {path}: duplicate source name {name!r}")
        sources.append(Source(name, token_env=token_env, url=url.strip()))
    return tuple(sources)


def only_default(sources: tuple[Source, ...]) -> bool:
    """True when the deployment has exactly the default source configured the original way."""
    return sources == (DEFAULT,)


def keyed_by_source(names: Sequence[str]) -> bool:
    """Whether partitions are (time window, source) pairs: always but for the default source
    alone, whose partition keys stay the time windows (e.g. 2026-11-27-04:00)."""
    return tuple(names) != (DEFAULT_SOURCE,)


def file_suffix(source: str) -> str:
    """What a source adds to the stem of its lake files (`<stem>.S.parquet`): nothing for the
    default source."""
    return "" if source == DEFAULT_SOURCE else f".{source}"


def source_of_file(name: str) -> str:
    """The source of a lake file from its name: `<stem>.S.parquet` is S's, anything else the
    default source's (files written before sources existed included)."""
    parts = name.removesuffix(".parquet").split(".")
    if len(parts) == 2 and SOURCE_NAME.match(parts[1]):
        return parts[1]
    return DEFAULT_SOURCE


def source_folder(source: str) -> str:
    """The folder holding a source's raw and quarantine trees (`source=S`, Hive-style): none
    for the default source."""
    return "" if source == DEFAULT_SOURCE else f"source={source}"
