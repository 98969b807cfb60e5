"""One snapshot, end to end: fetch → validate → land raw → publish the lake partition.

No Dagster here: the assets call these functions, and so can a script. Nothing is published
until the whole body has been fetched and validated; each published file appears by rename.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import statistics
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from pipelines import lake, settings
from pipelines.api import FetchResult
from pipelines.lake import DataDir, UnsafePath, partition_slug
from pipelines.normalize import Normalized, SnapshotRejected, normalize


class Fetcher(Protocol):
    """What landing needs of the API: `pipelines.api.VolumesClient`, or the Dagster resource
    `pipelines.resources.VolumeApi` that builds one."""

    def fetch_to(self, dest: Path, fields: tuple[str, ...] = ...) -> FetchResult: ...


log = logging.getLogger(__name__)


class DiskFull(OSError):
    """The data dir refused a write (no space, quota or file-size limit); nothing was published."""


_DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


@contextlib.contextmanager
def _disk_full_is_one_clear_error(data: DataDir) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL or isinstance(exc, DiskFull):
            raise
        raise DiskFull(
            exc.errno,
            f"cannot write under {data.root}: {exc.strerror} (disk full, quota or file-size "
            "limit); the previous data is untouched",
        ) from None
    except Exception as exc:
        # polars/pyarrow report a refused write as their own error type.
        text = str(exc)
        if not any(os.strerror(code) in text for code in _DISK_FULL):
            raise
        raise DiskFull(
            errno.ENOSPC,
            f"cannot write under {data.root}: {text.strip().splitlines()[0][:200]} (disk full, "
            "quota or file-size limit); the previous data is untouched",
        ) from None


class OutsideWindow(RuntimeError):
    """The API's clock is not inside the partition's window: a current-state API cannot be
    back-filled (replay from raw rebuilds the past)."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def outside_window_reason(observed_at: datetime, window: Window) -> str:
    """Why a snapshot cannot land in `window`, and what to run instead, in one line."""
    said = f"{observed_at:%Y-%m-%dT%H:%M:%SZ}"
    span = f"[{window.start:%Y-%m-%dT%H:%MZ}, {window.end:%Y-%m-%dT%H:%MZ})"
    if observed_at < window.start:
        where = (
            f"the API's clock says {said}, before partition {span}: the API is behind the "
            "instant asked for (a simulator on a frozen or slow clock, or a skewed server)"
        )
    else:
        where = (
            f"the API's clock says {said}, after partition {span}; the API only serves the "
            "present, so past partitions cannot be fetched (replay them from raw)"
        )
    return f"{where}; to snapshot what it serves now: volcap ingest --at {said}"


@dataclass
class RawLanding:
    fetch: FetchResult
    observed_at: datetime
    raw_path: Path
    raw_bytes: int
    normalized: Normalized
    staged_lake: Path


@dataclass
class LakePublish:
    path: Path
    rows: int
    file_bytes: int
    replayed: bool
    report: dict[str, object]
    quarantine_path: Path | None


def recent_volume_counts(data: DataDir, before: datetime, limit: int) -> list[int]:
    """`rows_in` of the last `limit` landed snapshots before `before`, newest first."""
    counts: list[int] = []
    if limit <= 0 or not data.raw.exists():
        return counts
    cutoff = partition_slug(before)
    for day in sorted(data.raw.glob("snapshot_date=*"), reverse=True):
        for sidecar in sorted(day.glob("*.meta.json"), reverse=True):
            if sidecar.name.split(".", 1)[0] >= cutoff:
                continue
            try:
                rows_in = lake.read_sidecar(sidecar)["validation"]["rows_in"]  # type: ignore[index]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an unreadable sidecar is no evidence either way
            counts.append(int(rows_in))
            if len(counts) == limit:
                return counts
    return counts


def check_volume_count(
    rows_in: int, recent: list[int], *, min_share: float, min_history: int = 3
) -> None:
    """Fail the snapshot when it holds implausibly fewer volumes than the recent median (an
    upstream outage serving a partial list looks like a mass deletion otherwise)."""
    if min_share <= 0 or len(recent) < min_history:
        return
    median = statistics.median(recent)
    if rows_in < min_share * median:
        raise SnapshotRejected(
            f"implausible drop in volume count: {rows_in} volumes against a median of "
            f"{median:g} over the last {len(recent)} snapshots (the floor is {min_share:.0%}); "
            "if the fleet really shrank, lower LakeStore.min_volume_share for one run"
        )


def land_raw(
    api: Fetcher,
    data: DataDir,
    window: Window,
    *,
    max_quarantine_share: float = settings.MAX_QUARANTINE_SHARE,
    min_volume_share: float = settings.MIN_VOLUME_SHARE,
    volume_median_window: int = settings.VOLUME_MEDIAN_WINDOW,
) -> RawLanding:
    """Fetch the current state and, if valid and inside `window`, publish the raw body."""
    with _disk_full_is_one_clear_error(data):
        return _land_raw(
            api,
            data,
            window,
            max_quarantine_share=max_quarantine_share,
            min_volume_share=min_volume_share,
            volume_median_window=volume_median_window,
        )


def _land_raw(
    api: Fetcher,
    data: DataDir,
    window: Window,
    *,
    max_quarantine_share: float,
    min_volume_share: float,
    volume_median_window: int,
) -> RawLanding:
    data.sweep_staging()
    staged: list[Path] = []

    def stage(name: str) -> Path:
        path = data.stage(name)
        staged.append(path)
        return path

    with data.partition_lock(window.start):
        data.sweep_raw(window.start)
        try:
            body = stage("body.json")
            fetched = api.fetch_to(body)
            observed_at = fetched.date or fetched.fetched_at
            if not window.contains(observed_at):
                raise OutsideWindow(outside_window_reason(observed_at, window))
            staged_raw = stage("raw.json.zst")
            # Compression and validation both release the GIL: run them side by side.
            with ThreadPoolExecutor(max_workers=1) as pool:
                compressing = pool.submit(lake.compress_zstd, body, staged_raw)
                normalized = normalize(
                    body,
                    snapshot_at=window.start,
                    observed_at=observed_at,
                    max_quarantine_share=max_quarantine_share,
                    source=data.source,
                )
                raw_bytes = compressing.result()
            check_volume_count(
                normalized.rows_in,
                recent_volume_counts(data, window.start, volume_median_window),
                min_share=min_volume_share,
            )
            # the source is in the tag: two fleets may serve the same body in the same window
            tag = f"{data.stem(window.start)}-{fetched.sha256[:16]}"
            staged_lake = stage(f"normalized-{tag}.parquet")
            lake.write_parquet(normalized.frame, staged_lake)
            if normalized.quarantine.height:
                lake.write_parquet(normalized.quarantine, stage(f"quarantine-{tag}.parquet"))
            sidecar = stage("raw.meta.json")
            lake.write_json(
                {
                    "url": fetched.url,
                    "status": fetched.status,
                    "date": fetched.date.isoformat() if fetched.date else None,
                    "fetched_at": fetched.fetched_at.isoformat(),
                    "observed_at": observed_at.isoformat(),
                    "snapshot_at": window.start.isoformat(),
                    "byte_count": fetched.byte_count,
                    "sha256": fetched.sha256,
                    "content_type": fetched.content_type,
                    "attempts": fetched.attempts,
                    "compressed_bytes": raw_bytes,
                    "raw_file": data.raw_body_for(window.start, fetched.sha256).name,
                    "raw_sha256": lake.file_sha256(staged_raw),
                    "validation": validation_report(normalized),
                },
                sidecar,
            )
            raw_path = data.raw_body_for(window.start, fetched.sha256)
            data.publish(staged_raw, raw_path)
            # The sidecar is the commit point: until it lands, the previous pair stands.
            data.publish(sidecar, data.raw_sidecar(window.start))
        except BaseException:
            _discard(*staged)
            raise
        _discard(body)
        data.sweep_raw(window.start)
    return RawLanding(fetched, observed_at, raw_path, raw_bytes, normalized, staged_lake)


def publish_lake(
    data: DataDir,
    snapshot_at: datetime,
    *,
    max_quarantine_share: float = settings.MAX_QUARANTINE_SHARE,
) -> LakePublish:
    """Publish the lake partition from the landed raw body (replays from raw when the
    normalized file staged by `land_raw` is not at hand, e.g. in another process)."""
    with _disk_full_is_one_clear_error(data):
        return _publish_lake(data, snapshot_at, max_quarantine_share=max_quarantine_share)


def _publish_lake(
    data: DataDir, snapshot_at: datetime, *, max_quarantine_share: float
) -> LakePublish:
    with data.partition_lock(snapshot_at):
        sidecar_path = data.raw_sidecar(snapshot_at)
        if data.remote is not None:  # a fresh cache replays from the bucket's raw landing
            data.remote.fetch_missing([sidecar_path])
            with contextlib.suppress(FileNotFoundError, UnsafePath, ValueError):
                data.remote.fetch_missing([data.raw_body(snapshot_at)])
        try:
            raw_path = data.raw_body(snapshot_at)
        except FileNotFoundError:
            raw_path = sidecar_path
        if not sidecar_path.exists() or not raw_path.exists():
            raise FileNotFoundError(
                f"no raw snapshot landed for {data.stem(snapshot_at)}; run the ingest first"
            )
        sidecar = lake.read_sidecar(sidecar_path)
        tag = f"{data.stem(snapshot_at)}-{str(sidecar['sha256'])[:16]}"
        staged = sorted(data.staging.glob(f"*-normalized-{tag}.parquet"))
        staged_quarantine = sorted(data.staging.glob(f"*-quarantine-{tag}.parquet"))
        report = dict(sidecar.get("validation") or {})  # type: ignore[call-overload]
        replayed = not staged
        if staged:
            staged_lake = staged[-1]
        else:
            normalized = replay(data, snapshot_at, max_quarantine_share=max_quarantine_share)
            staged_lake = data.stage("replay.parquet")
            lake.write_parquet(normalized.frame, staged_lake)
            report = validation_report(normalized)
            staged_quarantine = []
            if normalized.quarantine.height:
                staged_quarantine = [data.stage("quarantine.parquet")]
                lake.write_parquet(normalized.quarantine, staged_quarantine[0])
        rows = pl.scan_parquet(staged_lake).select(pl.len()).collect().item()
        quarantine_path = None
        if staged_quarantine:
            quarantine_path = data.quarantine_file(snapshot_at)
            data.publish(staged_quarantine[-1], quarantine_path)
        else:
            data.remove(data.quarantine_file(snapshot_at))
        final = data.lake_file(snapshot_at)
        data.publish(staged_lake, final)
        _discard(*staged[:-1], *staged_quarantine[:-1])
    return LakePublish(final, rows, final.stat().st_size, replayed, report, quarantine_path)


def validation_report(normalized: Normalized) -> dict[str, object]:
    """What the sidecar and the lake's metadata record about validation, and which path
    (fast or detailed) proved it."""
    return {**normalized.metadata, "validation_path": normalized.validation_path}


def replay(
    data: DataDir,
    snapshot_at: datetime,
    *,
    max_quarantine_share: float = settings.MAX_QUARANTINE_SHARE,
) -> Normalized:
    """Normalize a landed raw body again (the lake can always be rebuilt from raw)."""
    sidecar = lake.read_sidecar(data.raw_sidecar(snapshot_at))
    body = data.stage("replay.json")
    try:
        lake.decompress_zstd(data.raw_body(snapshot_at), body)
        observed_at = datetime.fromisoformat(str(sidecar["observed_at"])).astimezone(UTC)
        return normalize(
            body,
            snapshot_at=snapshot_at,
            observed_at=observed_at,
            max_quarantine_share=max_quarantine_share,
            source=data.source,
        )
    finally:
        _discard(body)


def _discard(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
