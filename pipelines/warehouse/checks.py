"""Data-quality checks on the published warehouse: `sql/checks/<name>.sql` selects the rows
that violate check <name>; these functions give the verdict and the figures to show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from pipelines import queries, settings
from pipelines.models import SQL_DIR
from pipelines.warehouse.schema import EPOCH, INFO_TABLE, midnight, scalar

#: `sql/checks/<name>.sql`: one query per check, named as the Dagster asset check.
CHECKS_DIR = SQL_DIR / queries.CHECKS
#: How many violating rows a check's metadata shows.
SHOWN = 3
#: Why a check has nothing to look at in a warehouse built from empty snapshots.
NO_VOLUMES_YET = "no volumes yet: every snapshot so far was a valid, empty list"


@dataclass(frozen=True)
class CheckOutcome:
    """A data-quality check's verdict on the published warehouse, with figures to show."""

    passed: bool
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Violations:
    """What a check's query found: how many rows violate, and the first few of them."""

    count: int
    first: list[dict[str, Any]]

    def meta(self) -> dict[str, list[dict[str, str]]]:
        """The first rows as text, to show beside the count (nothing when none violates)."""
        if not self.first:
            return {}
        return {"first": [{k: _text(v) for k, v in row.items()} for row in self.first]}


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def check_sql(name: str) -> str:
    """Check `name`'s query, loaded like every named query (header and parameters checked)."""
    return queries.queries(queries.CHECKS)[name].sql.strip()


def violations(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> Violations:
    """Run check `name`'s query: the number of rows it returns, and its first SHOWN rows
    (DuckDB refuses a parameter the query uses and is not given, or one it does not use)."""
    body = check_sql(name)
    count = int(scalar(con, f"select count(*) from (\n{body}\n)", params or None))
    if not count:  # the usual case: the query is not run twice
        return Violations(0, [])
    cursor = con.execute(body, params or None)
    columns = [d[0] for d in cursor.description]
    first = [dict(zip(columns, row, strict=True)) for row in cursor.fetchmany(SHOWN)]
    return Violations(count, first)


def _no_volumes_yet(con: duckdb.DuckDBPyConnection) -> bool:
    return not scalar(con, "select count(*) from (from volume_snapshots limit 1)")


def _built_since(con: duckdb.DuckDBPyConnection) -> datetime:
    """The first instant the published build rebuilt: the days before it were checked by the
    builds that made them (the epoch for a full build, or a warehouse without the record)."""
    try:
        since = scalar(con, f"select since from {INFO_TABLE}")
    except duckdb.Error:
        since = None
    return midnight(since or EPOCH)


def check_unique_snapshots(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """(source, volume_id, snapshot_at) identifies a row of volume_snapshots (checked on the
    days the last build rebuilt: each earlier day was checked when it was built)."""
    since = _built_since(con)
    found = violations(con, "unique_volume_snapshots", since=since)
    return CheckOutcome(
        found.count == 0,
        {"duplicated_keys": found.count, "since": since.isoformat(), **found.meta()},
    )


def check_non_negative(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """No usage count or limit is negative (on the days the last build rebuilt, as above)."""
    since = _built_since(con)
    found = violations(con, "no_negative_counts", since=since)
    return CheckOutcome(
        found.count == 0, {"negative_rows": found.count, "since": since.isoformat(), **found.meta()}
    )


def check_fresh(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    max_age: timedelta = settings.FRESHNESS_MAX_AGE,
) -> CheckOutcome:
    """Every source's latest snapshot is no older than `max_age` (the stalest one is shown)."""
    now = now or datetime.now(UTC)
    stale = violations(con, "latest_snapshot_fresh", now=now, max_age=max_age)
    # the same query without a limit: every source, stalest first
    stalest = stale.first or violations(con, "latest_snapshot_fresh", now=now, max_age=None).first
    latest = stalest[0]["latest_snapshot_at"] if stalest else None
    if latest is None:
        return CheckOutcome(False, {"latest_snapshot_at": "none"})
    empty = stalest[0]["source"] is None  # no volumes yet: the build's as_of stands for them
    age: timedelta = stalest[0]["age"]
    return CheckOutcome(
        stale.count == 0,
        {
            **({"note": NO_VOLUMES_YET} if empty else {}),
            "latest_snapshot_at": latest.isoformat(),
            "age_minutes": round(age.total_seconds() / 60, 1),
            "max_age_minutes": max_age.total_seconds() / 60,
            **({"stale_sources": stale.count} if stale.count and not empty else {}),
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
    missing = violations(con, "no_missing_snapshots", cadence=cadence_minutes, window=window)
    if not missing.count and _no_volumes_yet(con):
        return CheckOutcome(True, {"skipped": NO_VOLUMES_YET, "cadence_minutes": cadence_minutes})
    first = missing.first[0] if missing.first else None
    return CheckOutcome(
        not missing.count,
        {
            "missing_snapshots": missing.count,
            "first_missing": first["snapshot_at"].isoformat() if first else "none",
            "first_missing_source": first["source"] if first else "none",
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
    drops = violations(con, "row_count_stable", window=window, max_drop_share=max_drop_share)
    # the same query without a limit: every drop, largest first
    worst = (
        drops.first or violations(con, "row_count_stable", window=window, max_drop_share=None).first
    )
    if not worst:
        if _no_volumes_yet(con):
            return CheckOutcome(True, {"skipped": NO_VOLUMES_YET})
        return CheckOutcome(True, {"worst_drop_share": 0.0})
    row = worst[0]
    return CheckOutcome(
        drops.count == 0,
        {
            "worst_drop_share": round(float(row["drop_share"]), 4),
            "source": row["source"],
            "at": row["snapshot_at"].isoformat(),
            "rows": int(row["row_count"]),
            "previous_rows": int(row["previous_row_count"]),
        },
    )


def check_forecast_sanity(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """days_to_full >= 0 and days_to_full_low <= days_to_full <= days_to_full_high."""
    found = violations(con, "forecast_sane")
    return CheckOutcome(found.count == 0, {"bad_rows": found.count, **found.meta()})
