"""Data-quality checks on the published warehouse (the Dagster asset checks' verdicts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from pipelines import settings
from pipelines.warehouse.schema import EPOCH, INFO_TABLE, scalar


def forecast_problems(con: duckdb.DuckDBPyConnection, table: str = "quota_forecast") -> int:
    """Rows breaking forecast sanity: negative days, or low <= point <= high violated."""
    return int(
        scalar(
            con,
            f"""
            select count(*) from "{table}"
            where days_to_full < 0 or days_to_full_low < 0 or days_to_full_high < 0
                or days_to_full_low > days_to_full or days_to_full > days_to_full_high
            """,
        )
    )


#: Why a check has nothing to look at in a warehouse built from empty snapshots.
NO_VOLUMES_YET = "no volumes yet: every snapshot so far was a valid, empty list"


def _no_volumes_yet(con: duckdb.DuckDBPyConnection) -> bool:
    return not scalar(con, "select count(*) from (from volume_snapshots limit 1)")


@dataclass(frozen=True)
class CheckOutcome:
    """A data-quality check's verdict on the published warehouse, with figures to show."""

    passed: bool
    metadata: dict[str, Any]


def _built_since(con: duckdb.DuckDBPyConnection) -> datetime:
    """The first instant the published build rebuilt: the days before it were checked by the
    builds that made them (the epoch for a full build, or a warehouse without the record)."""
    try:
        since = scalar(con, f"select since from {INFO_TABLE}")
    except duckdb.Error:
        since = None
    return datetime.combine(since or EPOCH, datetime.min.time(), UTC)


def check_unique_snapshots(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """(source, volume_id, snapshot_at) identifies a row of volume_snapshots (checked on the
    days the last build rebuilt: each earlier day was checked when it was built)."""
    since = _built_since(con)
    duplicates = int(
        scalar(
            con,
            "select count(*) - count(distinct (source, volume_id, snapshot_at)) "
            "from volume_snapshots where snapshot_at >= $since",
            {"since": since},
        )
    )
    return CheckOutcome(duplicates == 0, {"duplicate_rows": duplicates, "since": since.isoformat()})


def check_non_negative(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """No usage count or limit is negative (on the days the last build rebuilt, as above)."""
    since = _built_since(con)
    negative = int(
        scalar(
            con,
            """
            select count(*) from volume_snapshots
            where snapshot_at >= $since
                and (used_bytes < 0 or inode_count < 0 or mount_count < 0
                    or max_size_bytes < 0 or max_file_count < 0 or max_mounts < 0)
            """,
            {"since": since},
        )
    )
    return CheckOutcome(negative == 0, {"negative_rows": negative, "since": since.isoformat()})


def check_fresh(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    max_age: timedelta = settings.FRESHNESS_MAX_AGE,
) -> CheckOutcome:
    """Every source's latest snapshot is no older than `max_age` (the stalest one is shown)."""
    now = now or datetime.now(UTC)
    # from the daily rollup: the same instants, without reading the hourly history
    latest = scalar(
        con,
        "select min(latest) from "
        "(select max(last_snapshot_at) as latest from volume_daily group by source)",
    )
    empty = latest is None
    if empty:  # no volumes yet: the build's as_of is the latest (empty) snapshot
        latest = scalar(con, f"select max(as_of) from {INFO_TABLE}")
    if latest is None:
        return CheckOutcome(False, {"latest_snapshot_at": "none"})
    age = now - latest
    return CheckOutcome(
        age <= max_age,
        {
            **({"note": NO_VOLUMES_YET} if empty else {}),
            "latest_snapshot_at": latest.isoformat(),
            "age_minutes": round(age.total_seconds() / 60, 1),
            "max_age_minutes": max_age.total_seconds() / 60,
        },
    )


def check_no_missing_snapshots(
    con: duckdb.DuckDBPyConnection,
    *,
    cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES,
    window: timedelta = settings.CHECK_RECENT_WINDOW,
) -> CheckOutcome:
    """Every expected snapshot instant within `window` before the latest one is present, for
    every source (each within the window before its own latest snapshot)."""
    missing = con.execute(
        """
        with
        bounds as (
            -- from the daily rollup: the same instants, without reading the hourly history
            select source, max(last_snapshot_at) as latest, min(first_snapshot_at) as earliest
            from volume_daily
            group by source
        ),
        expected as (
            select source, unnest(generate_series(
                greatest(latest - $window + to_minutes($cadence), earliest),
                latest,
                to_minutes($cadence)
            )) as snapshot_at
            from bounds
        ),
        present as (
            select distinct volume_snapshots.source, volume_snapshots.snapshot_at
            from volume_snapshots
            inner join bounds on volume_snapshots.source = bounds.source
            where volume_snapshots.snapshot_at >= bounds.latest - $window
        )
        select snapshot_at, source from expected anti join present using (source, snapshot_at)
        order by snapshot_at, source
        """,
        {"window": window, "cadence": cadence_minutes},
    ).fetchall()
    if not missing and _no_volumes_yet(con):
        return CheckOutcome(True, {"skipped": NO_VOLUMES_YET, "cadence_minutes": cadence_minutes})
    return CheckOutcome(
        not missing,
        {
            "missing_snapshots": len(missing),
            "first_missing": missing[0][0].isoformat() if missing else "none",
            "first_missing_source": missing[0][1] if missing else "none",
            "cadence_minutes": cadence_minutes,
        },
    )


def check_row_count_stable(
    con: duckdb.DuckDBPyConnection,
    *,
    max_drop_share: float = settings.ROW_DROP_WARN_SHARE,
    window: timedelta = settings.CHECK_RECENT_WINDOW,
) -> CheckOutcome:
    """No snapshot within `window` of the latest has `max_drop_share` fewer rows than the one
    before it (a partial fetch, or a mass delete worth a look)."""
    row = con.execute(
        """
        with
        counts as (
            select source, snapshot_at, count(*) as n from volume_snapshots
            where snapshot_at >= (select max(last_snapshot_at) from volume_daily) - $window
            group by source, snapshot_at
        ),
        drops as (
            select source, snapshot_at, n,
                lag(n) over (partition by source order by snapshot_at) as previous
            from counts
        )
        select snapshot_at, n, previous, 1 - n / previous as drop_share, source
        from drops where previous is not null
        order by drop_share desc limit 1
        """,
        {"window": window},
    ).fetchone()
    if row is None:
        if _no_volumes_yet(con):
            return CheckOutcome(True, {"skipped": NO_VOLUMES_YET})
        return CheckOutcome(True, {"worst_drop_share": 0.0})
    snapshot_at, n, previous, drop_share, source = row
    return CheckOutcome(
        drop_share <= max_drop_share,
        {
            "worst_drop_share": round(float(drop_share), 4),
            "source": source,
            "at": snapshot_at.isoformat(),
            "rows": int(n),
            "previous_rows": int(previous),
        },
    )


def check_forecast_sanity(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """days_to_full >= 0 and days_to_full_low <= days_to_full <= days_to_full_high."""
    bad = forecast_problems(con)
    return CheckOutcome(bad == 0, {"bad_rows": bad})
