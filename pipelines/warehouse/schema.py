"""The warehouse's relations: its schemas, public tables and build bookkeeping, and SQL helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import duckdb

#: `$since` of a full build: every day is built.
EPOCH = date(1970, 1, 1)


def midnight(day: date) -> datetime:
    """The day's 00:00 UTC: where a build's first changed day, and a backtest origin, start."""
    return datetime.combine(day, datetime.min.time(), UTC)


#: The default schema (`main`) holds exactly the public tables; models that are only build
#: inputs live in `staging`, the build's own bookkeeping in `build`.
STAGING_SCHEMA = "staging"
BUILD_SCHEMA = "build"
#: The lake files a build read, (path under the lake table, day, size, mtime_ns, inode), and the
#: build's models fingerprint and as_of: what the next build compares to find changed days.
MANIFEST_TABLE = f"{BUILD_SCHEMA}._build_manifest"
INFO_TABLE = f"{BUILD_SCHEMA}._build_info"


#: Tables verified before publishing; all but volume_snapshots are exported to
#: `marts/<table>.parquet`.
PUBLIC_TABLES: tuple[str, ...] = (
    "volume_snapshots",
    "volumes",
    "volume_daily",
    "fleet_daily",
    "capacity_trends",
    "quota_events",
    "quota_forecast",
    "volume_risk",
    "fleet_forecast",
    "quota_forecast_history",
    "forecast_backtest",
    "forecast_accuracy",
)


#: Day-grained tables exported as one Parquet file per day, `marts/<table>/<YYYY-MM-DD>.parquet`
#: (table -> its day column): a build writes only the days from its first changed one, where
#: one file of the whole history was the largest part of an hourly build's export.
DAY_EXPORTS: dict[str, str] = {"volume_daily": "day"}


#: The tables exported to `marts/<table>.parquet` on every build. volume_snapshots is not: its
#: Parquet form is the lake itself (`lake/volume_snapshots/snapshot_date=*/`), and re-exporting
#: the whole hourly history cost more than the rest of an incremental build; nor are the
#: DAY_EXPORTS.
EXPORTED_TABLES: tuple[str, ...] = tuple(
    t for t in PUBLIC_TABLES if t != "volume_snapshots" and t not in DAY_EXPORTS
)


#: Written by older builds (before volume_snapshots left the exports, before volume_daily was
#: exported by day); removed by the next build so no reader keeps reading a file that no longer
#: follows the warehouse.
RETIRED_EXPORTS: tuple[str, ...] = ("volume_snapshots.parquet", "volume_daily.parquet")


def schema_of(name: str) -> str:
    """The schema a model's table lives in: `main` for the public ones, else staging."""
    return "main" if name in PUBLIC_TABLES else STAGING_SCHEMA


def qualified(name: str) -> str:
    """A model's table, schema-qualified."""
    return f'{schema_of(name)}."{name}"'


def sql_string(value: str) -> str:
    """A SQL string literal. Only for CREATE VIEW, which cannot take prepared parameters."""
    return "'" + value.replace("'", "''") + "'"


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    row = con.execute(sql, params).fetchone()
    return row[0] if row else None
