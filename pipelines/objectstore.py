"""The data dir on object storage: `VOLCAP_DATA_DIR=s3://bucket/prefix`.

volcap keeps working on a local copy of the data dir (the *cache*: staging, locks, DuckDB and
its spill files need a POSIX filesystem) and mirrors it to the object store, which is the
source of truth:

- every file the pipeline publishes is first uploaded (one PUT, or a multipart upload that
  becomes visible only when completed) and only then renamed into place locally, so a refused
  upload fails the run and leaves both the bucket and the cache as they were;
- removals (a replaced quarantine file, the hourly files a compaction replaced) go to the
  bucket first, then to the cache;
- a build or a compaction first *pulls* the lake: downloads the objects that are new or
  changed (by ETag) and drops cached files the bucket no longer holds, so it works on exactly
  what the bucket holds and never deletes an object it has not read.

The store library is obstore (object_store, the Rust crate behind DataFusion, polars and
delta-rs): one small wheel, S3/GCS/Azure with the usual `AWS_*` environment (including
`AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP` for S3-compatible stores), streaming multipart uploads
and conditional puts. fsspec/s3fs would add aiobotocore's dependency tree for the same calls,
and pyarrow's S3 filesystem has no conditional writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from pipelines import config, publish

#: Schemes `VOLCAP_DATA_DIR` may name instead of a local path.
SCHEMES = ("s3",)
INDEX_FILE = ".remote-index.json"


class ObjectStoreError(RuntimeError):
    """The object store refused or failed an operation; nothing was published locally."""


def is_remote(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in SCHEMES


def cache_dir(url: str) -> Path:
    """The local working copy of a remote data dir: `$VOLCAP_CACHE_DIR`, else
    `$XDG_CACHE_HOME/volcap/<bucket>/<prefix>` (default `~/.cache/volcap/...`)."""
    configured = config.cache_dir()
    if configured:
        return Path(configured).expanduser().resolve()
    base = Path(config.cache_home() or Path.home() / ".cache")
    parts = urlsplit(url)
    return (base / "volcap" / parts.netloc / parts.path.strip("/")).expanduser().resolve()


def _one_line(error: BaseException) -> str:
    """obstore's errors span dozens of lines (a debug dump with the response body): keep the
    HTTP status and the S3 error code, which is what an operator needs."""
    text = str(error)
    if "BadScheme" in text:
        return "plain-http endpoint refused by the client (set AWS_ALLOW_HTTP=true for it)"
    status = re.search(r"status code: (\d{3}[^:<]*)", text)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    if status or code:
        return " ".join(
            part for part in (status and status.group(1).strip(), code and code.group(1)) if part
        )
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


@dataclass(frozen=True, eq=False)
class Remote:
    """A bucket prefix mirrored by a local cache directory `root`."""

    url: str
    root: Path
    store: Any = field(repr=False)

    @classmethod
    def open(cls, url: str, root: Path) -> Remote:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.netloc:
            raise ValueError(f"not an object-store URL: {url!r} (expected s3://bucket/prefix)")
        store = S3Store(
            parts.netloc,
            prefix=parts.path.strip("/") or None,
            # credentials, region and endpoint come from the AWS_* environment; client options
            # given here replace the environment's, so `AWS_ALLOW_HTTP` is carried over
            client_options={
                "connect_timeout": "10s",
                "timeout": "300s",
                "allow_http": config.object_store_allows_http(),
            },
            retry_config={
                "max_retries": 4,
                "retry_timeout": timedelta(seconds=120),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=200),
                    "max_backoff": timedelta(seconds=10),
                    "base": 2,
                },
            },
        )
        return cls(url.rstrip("/"), root, store)

    # -- keys ---------------------------------------------------------------------------------
    def key(self, path: Path) -> str:
        """The object key (relative to the prefix) of a path under the cache root."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def address(self, path: Path) -> str:
        return f"{self.url}/{self.key(path)}"

    # -- writes -------------------------------------------------------------------------------
    def put(self, local: Path, path: Path) -> str | None:
        """Upload `local` as the object for `path` (atomically visible); returns its ETag."""
        key = self.key(path)
        try:
            result = obstore.put(self.store, key, Path(local))
        except Exception as error:  # obstore raises its own and builtin types
            raise ObjectStoreError(
                f"object store refused to write {self.url}/{key}: {_one_line(error)}; "
                "nothing was published"
            ) from None
        return result.get("e_tag")

    def delete(self, path: Path) -> None:
        key = self.key(path)
        try:
            obstore.delete(self.store, key)
        except FileNotFoundError:
            pass
        except Exception as error:
            raise ObjectStoreError(
                f"object store refused to delete {self.url}/{key}: {_one_line(error)}"
            ) from None

    # -- reads --------------------------------------------------------------------------------
    def listing(self, under: Path) -> dict[str, dict[str, Any]]:
        """Every object under a cache folder, by key."""
        prefix = self.key(under).rstrip("/") + "/"
        try:
            return {
                meta["path"]: dict(meta)
                for batch in obstore.list(self.store, prefix)
                for meta in batch
            }
        except Exception as error:
            raise ObjectStoreError(f"cannot list {self.url}/{prefix}: {_one_line(error)}") from None

    def download(self, key: str, dest: Path) -> None:
        """Fetch one object into `dest`, published like every file of the data dir."""
        try:
            with publish.staged_beside(dest, suffix=".download") as staged:
                response = obstore.get(self.store, key)
                with open(staged, "wb") as out:
                    for chunk in response:
                        out.write(chunk)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise ObjectStoreError(f"cannot read {self.url}/{key}: {_one_line(error)}") from None

    def fetch_missing(self, paths: Iterable[Path]) -> None:
        """Download each path's object if the cache lacks the file (absent objects are skipped)."""
        for path in paths:
            if not path.exists():
                with contextlib.suppress(FileNotFoundError):
                    self.download(self.key(path), path)

    def pull(self, under: Path) -> PullReport:
        """Make the cache folder `under` hold exactly the objects under its key: download new
        or changed objects (by ETag), remove cached files the bucket no longer holds."""
        remote = self.listing(under)
        index_path = self.root / INDEX_FILE
        try:
            index: dict[str, str] = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
        downloaded = removed = transferred = 0
        for key, meta in sorted(remote.items()):
            local = self.root / key
            etag = str(meta.get("e_tag") or "")
            if local.exists() and local.stat().st_size == meta["size"] and index.get(key) == etag:
                continue
            self.download(key, local)
            index[key] = etag
            downloaded += 1
            transferred += int(meta["size"])
        if under.exists():
            for local in sorted(under.rglob("*")):
                if local.is_file() and not local.name.startswith("."):
                    key = self.key(local)
                    if key not in remote:
                        local.unlink(missing_ok=True)
                        index.pop(key, None)
                        removed += 1
        publish.write_text(index_path, json.dumps(index, sort_keys=True))
        return PullReport(len(remote), downloaded, removed, transferred)


@dataclass(frozen=True)
class PullReport:
    objects: int
    downloaded: int
    removed: int
    bytes: int
