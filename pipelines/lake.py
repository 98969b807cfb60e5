"""Where things live under the data dir, and how they get there: staged, then atomically published."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import sources
from pipelines.objectstore import Remote
from pipelines.publish import FILE_MODE, mkdir_private, publish
from pipelines.sources import DEFAULT_SOURCE, SOURCE_NAME

if TYPE_CHECKING:
    import polars as pl

LAKE_TABLE = "volume_snapshots"
WAREHOUSE_FILE = "warehouse.duckdb"
_SLUG = re.compile(r"^\d{8}T\d{4}Z$")


class UnsafePath(ValueError):
    """A computed path would fall outside the data dir."""


def partition_slug(snapshot_at: datetime) -> str:
    """The file stem for a partition instant, e.g. 20261127T0100Z (no ':' — Hadoop/Spark-safe)."""
    return snapshot_at.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class DataDir:
    """The layout of `$VOLCAP_DATA_DIR`, as seen by one source (fleet).

    The default source keeps the original paths. Another source S shares the lake's day
    folders (the lake path is a published interface) with files named `<slug>.S.parquet`, and
    has its own raw and quarantine trees under `source=S/`, so no sweep or glob of one source
    can touch another's files.
    """

    root: Path
    source: str = DEFAULT_SOURCE
    #: With a remote (`VOLCAP_DATA_DIR=s3://…`), `root` is the local working copy and every
    #: publish and removal goes to the object store first (see `pipelines/objectstore.py`).
    remote: Remote | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not SOURCE_NAME.match(self.source):
            raise UnsafePath(f"not a source name: {self.source!r}")

    @classmethod
    def at(
        cls,
        root: str | os.PathLike[str],
        source: str = DEFAULT_SOURCE,
        *,
        remote: Remote | None = None,
    ) -> DataDir:
        return cls(Path(root).expanduser().resolve(), source, remote)

    def for_source(self, source: str) -> DataDir:
        """The same data dir (and object store) as seen by another source."""
        return dataclasses.replace(self, source=source)

    @property
    def source_suffix(self) -> str:
        """What this source adds to a lake file's stem (`sources.file_suffix`)."""
        return sources.file_suffix(self.source)

    def stem(self, snapshot_at: datetime) -> str:
        """The partition's stem for this source: `<slug>` or `<slug>.S`."""
        return partition_slug(snapshot_at) + self.source_suffix

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, staged: Path, final: Path) -> None:
        """Publish a staged file: upload it (if remote), then rename it into place locally."""
        if self.remote is not None:
            self.remote.put(staged, final)
        publish(staged, final)

    def remove(self, path: Path) -> None:
        """Remove a published file: from the object store (if remote), then locally."""
        if self.remote is not None:
            self.remote.delete(path)
        path.unlink(missing_ok=True)

    def pull_lake(self) -> None:
        """Bring the cached lake in line with the object store (no-op without a remote)."""
        if self.remote is not None:
            self.remote.pull(self.lake)

    # -- layout -------------------------------------------------------------------------------
    @property
    def lake(self) -> Path:
        return self.root / "lake" / LAKE_TABLE

    @property
    def raw(self) -> Path:
        return self.root / "raw" / LAKE_TABLE / sources.source_folder(self.source)

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine" / LAKE_TABLE / sources.source_folder(self.source)

    @property
    def staging(self) -> Path:
        return self.root / ".staging"

    @property
    def locks(self) -> Path:
        return self.root / ".locks"

    def lake_files(self) -> list[Path]:
        """The snapshot files in the lake now (every source's)."""
        return sorted(self.lake.glob("snapshot_date=*/*.parquet"))

    @property
    def warehouse(self) -> Path:
        """The published warehouse."""
        return self.root / WAREHOUSE_FILE

    @property
    def marts(self) -> Path:
        """The Parquet export of the warehouse's public tables, `<table>.parquet`."""
        return self.root / "marts"

    @property
    def warehouse_links(self) -> Path:
        """One folder per build of hard links to the lake files it read
        (`<token>/current|legacy/snapshot_date=YYYY-MM-DD/`), which its `lake_volume_snapshots`
        view reads (see `pipelines/warehouse/lake_view.py`)."""
        return self.root / "warehouse.lake"

    def _under(self, base: Path, snapshot_at: datetime, suffix: str) -> Path:
        slug = partition_slug(snapshot_at)
        if not _SLUG.match(slug):  # defensive: the slug is ours, but paths must stay inside
            raise UnsafePath(slug)
        day = snapshot_at.astimezone(UTC).strftime("%Y-%m-%d")
        path = (base / f"snapshot_date={day}" / f"{slug}{suffix}").resolve()
        if not path.is_relative_to(self.root):
            raise UnsafePath(str(path))
        return path

    def lake_file(self, snapshot_at: datetime) -> Path:
        return self._under(self.lake, snapshot_at, f"{self.source_suffix}.parquet")

    def raw_body(self, snapshot_at: datetime) -> Path:
        """The landed body the partition's sidecar commits to (FileNotFoundError if none)."""
        name = str(read_sidecar(self.raw_sidecar(snapshot_at)).get("raw_file") or "")
        slug = partition_slug(snapshot_at)
        if not re.fullmatch(rf"{slug}\.[0-9a-f]{{16}}\.json\.zst", name):
            raise UnsafePath(f"sidecar of {slug} names an unexpected raw file {name!r}")
        return self.raw_sidecar(snapshot_at).with_name(name)

    def raw_body_for(self, snapshot_at: datetime, sha256: str) -> Path:
        """Where a body with this checksum lands. Bodies are content-addressed so the sidecar,
        published last, is the single commit point: a crash between the two renames leaves the
        previous pair intact plus an orphan body, never a body that disagrees with its sidecar."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise UnsafePath(sha256)
        return self._under(self.raw, snapshot_at, f".{sha256[:16]}.json.zst")

    def sweep_raw(self, snapshot_at: datetime) -> int:
        """Remove bodies of this partition that its sidecar does not commit to (a killed
        landing's orphans, or a replaced snapshot). Call under the partition lock."""
        try:
            keep = self.raw_body(snapshot_at).name
        except FileNotFoundError:
            keep = ""
        folder = self.raw_sidecar(snapshot_at).parent
        removed = 0
        for body in folder.glob(f"{partition_slug(snapshot_at)}.*.json.zst"):
            if body.name != keep:
                self.remove(body)
                removed += 1
        return removed

    def raw_sidecar(self, snapshot_at: datetime) -> Path:
        return self._under(self.raw, snapshot_at, ".meta.json")

    def quarantine_file(self, snapshot_at: datetime) -> Path:
        return self._under(self.quarantine, snapshot_at, ".parquet")

    # -- staging ------------------------------------------------------------------------------
    def stage(self, name: str) -> Path:
        """A fresh staging path on the same filesystem (so publishing is a rename)."""
        mkdir_private(self.staging)
        return self.staging / f"{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}"

    def sweep_staging(self) -> int:
        """Remove leftovers of killed runs: staging files whose writer process is gone."""
        removed = 0
        if not self.staging.exists():
            return 0
        for leftover in self.staging.iterdir():
            pid_text = leftover.name.split("-", 1)[0]
            if pid_text.isdigit() and _pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(FileNotFoundError):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
                removed += 1
        return removed

    def sweep_locks(self) -> int:
        """Remove the partition lock files nobody holds (see `sweep_locks`)."""
        return sweep_locks(self.locks)

    @contextlib.contextmanager
    def partition_lock(self, snapshot_at: datetime, timeout: float = 600.0) -> Iterator[None]:
        """One writer per partition at a time, across processes (CLI, daemon, tests)."""
        mkdir_private(self.locks)
        path = self.locks / f"{self.stem(snapshot_at)}.lock"
        busy = f"another run holds partition {self.stem(snapshot_at)}"
        with exclusive_lock(path, timeout, TimeoutError(busy)):
            yield


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float, busy: Exception) -> Iterator[None]:
    """An exclusive `flock` on `path`, waiting up to `timeout` seconds, else raising `busy`.
    The kernel releases it when the holder dies, so a killed run never leaves it stuck.

    The holder removes the file when it is done, so lock files do not pile up (one per
    partition ever written). Removal is safe because the path is only ever unlinked by whoever
    holds the lock on the file it names (here, or `sweep_locks`): a process that opened the
    file before it was removed gets the lock on a file no longer at `path`, sees that, and
    starts over on the new one."""
    deadline = time.monotonic() + timeout
    fd = _acquire(path, deadline, busy)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before unlocking: whoever gets this file next sees it is gone
        os.close(fd)  # releases the lock


def _acquire(path: Path, deadline: float, busy: Exception) -> int:
    """A descriptor holding the `flock` on the file `path` names when it returns."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise busy from None
                    time.sleep(0.05)
            if _still_at(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it while we waited: start over on the new file


def _still_at(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def sweep_locks(folder: Path) -> int:
    """Remove the lock files in `folder` that nobody holds: those of runs killed while holding
    them (a SIGKILL skips the removal) and those earlier versions kept. Safe beside running
    writers: a file is removed only while holding its lock, and only if the path still names it."""
    removed = 0
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDWR)  # never O_CREAT: a holder may have just removed it
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_at(path, fd):
                path.unlink()
                removed += 1
        except BlockingIOError:
            pass  # held: in use
        finally:
            os.close(fd)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet(frame: pl.DataFrame, staged: Path) -> int:
    """Write a frame as zstd Parquet with statistics; returns the file size."""
    frame.write_parquet(staged, compression="zstd", statistics=True)
    return staged.stat().st_size


def compress_zstd(src: Path, staged: Path) -> int:
    """Compress a raw body with zstd (pyarrow's codec; Python 3.11 has no stdlib zstd)."""
    # imported here: a build, which never compresses, does not pay pyarrow's import
    import pyarrow as pa

    with (
        open(src, "rb") as fin,
        pa.OSFile(str(staged), "wb") as sink,
        pa.CompressedOutputStream(sink, "zstd") as out,
    ):
        while chunk := fin.read(8 << 20):
            out.write(chunk)
    return staged.stat().st_size


def decompress_zstd(src: Path, staged: Path) -> None:
    import pyarrow as pa

    with pa.input_stream(str(src), compression="zstd") as fin, open(staged, "wb") as out:
        while chunk := fin.read(8 << 20):
            out.write(chunk)


def write_json(obj: object, staged: Path) -> None:
    staged.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_sidecar(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))
