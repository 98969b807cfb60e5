"""Other engines read the lake: PySpark (local mode) and polars get DuckDB's `fleet_daily`.

Two simulated days of snapshots (including 23:00, the last hour of each UTC day) are fetched
over HTTP and published by the real ingestion code, the warehouse is built, and Spark reads
`lake/volume_snapshots` with Hive partition discovery. FLEET_DAILY_SPARK_SQL and
`fleet_daily_polars` are the queries the README shows ("Reading the lake from other engines"); each must equal the warehouse's
model row for row, to the byte.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.ingest import Window, land_raw, publish_lake
from pipelines.lake import DataDir
from pipelines.resources import VolumeApi
from pipelines.warehouse import DAY_EXPORTS, PUBLIC_TABLES, build_warehouse, connect_published
from simulator import DEFAULT_START, SimulatorServer

TOKEN = "canary-spark-3e77a0"
HOURS = (0, 11, 23)  # 23:00 is where a non-UTC reader would move rows to the next day
DAYS = 2

#: fleet_daily (sql/marts/fleet_daily.sql over volume_daily) in Spark SQL, over a view
#: `volume_snapshots` of the lake. The first step keeps one row per (source, volume_id, snapshot_at)
#: like the warehouse's source view: a compacted day file may sit beside an hourly one.
FLEET_DAILY_SPARK_SQL = """
with

lake as (
    select * from (
        select *, row_number() over (
            partition by source, volume_id, snapshot_at order by observed_at desc
        ) as copy
        from volume_snapshots
    ) where copy = 1
),

volume_days as (
    select
        source,
        volume_id,
        cast(snapshot_at as date) as day,
        max(snapshot_at) as last_snapshot_at,
        max_by(used_bytes, snapshot_at) as used_bytes_last,
        max_by(inode_count, snapshot_at) as inode_count_last,
        max_by(max_size_bytes, snapshot_at) as max_size_bytes,
        max_by(status, snapshot_at) as status,
        max_by(host_id, snapshot_at) as host_id
    from lake
    group by source, volume_id, cast(snapshot_at as date)
),

day_ends as (
    select source, day, max(last_snapshot_at) as snapshot_at
    from volume_days
    group by source, day
),

end_of_day as (
    select volume_days.*, day_ends.snapshot_at
    from volume_days
    inner join day_ends
        on volume_days.source = day_ends.source
        and volume_days.day = day_ends.day
        and volume_days.last_snapshot_at = day_ends.snapshot_at
)

select
    source,
    day,
    max(snapshot_at) as snapshot_at,
    count(*) as volumes,
    count(*) filter (where status = 'available') as volumes_available,
    count(*) filter (where status = 'attached') as volumes_attached,
    count(*) filter (where status = 'degraded') as volumes_degraded,
    count(*) filter (where status = 'error') as volumes_error,
    count(*) filter (
        where status not in ('available', 'attached', 'degraded', 'error')
    ) as volumes_other_status,
    sum(used_bytes_last) as used_bytes,
    sum(inode_count_last) as inode_count,
    sum(max_size_bytes) as bounded_quota_bytes,
    sum(used_bytes_last) filter (where max_size_bytes is not null) as bounded_used_bytes,
    cast(sum(used_bytes_last) filter (where max_size_bytes is not null) as double)
        / nullif(sum(max_size_bytes), 0) as bounded_utilization,
    count(*) filter (where max_size_bytes is null) as unlimited_volumes,
    count(distinct host_id) as hosts_diagnostic
from end_of_day
group by source, day
order by source, day
"""


def fleet_daily_polars(lake_root: str | Path) -> pl.DataFrame:
    """fleet_daily over the lake in polars (the README's snippet)."""
    snapshots = (
        pl.scan_parquet(f"{lake_root}/**/*.parquet", hive_partitioning=True)
        .sort("observed_at")
        .unique(["source", "volume_id", "snapshot_at"], keep="last")
    )
    bounded = pl.col("max_size_bytes").is_not_null()
    volume_days = snapshots.group_by(
        "source", "volume_id", day=pl.col("snapshot_at").dt.date()
    ).agg(pl.all().sort_by("snapshot_at").last())
    return (
        volume_days.filter(
            pl.col("snapshot_at") == pl.col("snapshot_at").max().over("source", "day")
        )
        .group_by("source", "day")
        .agg(
            snapshot_at=pl.col("snapshot_at").max(),
            volumes=pl.len(),
            **{
                f"volumes_{status}": (pl.col("status") == status).sum()
                for status in ("available", "attached", "degraded", "error")
            },
            volumes_other_status=(
                ~pl.col("status").is_in(["available", "attached", "degraded", "error"])
            ).sum(),
            used_bytes=pl.col("used_bytes").sum(),
            inode_count=pl.col("inode_count").sum(),
            # sum() of nothing is 0 in polars, NULL in SQL
            bounded_quota_bytes=pl.when(bounded.any()).then(pl.col("max_size_bytes").sum()),
            bounded_used_bytes=pl.when(bounded.any()).then(
                pl.col("used_bytes").filter(bounded).sum()
            ),
            unlimited_volumes=pl.col("max_size_bytes").is_null().sum(),
            hosts_diagnostic=pl.col("host_id").drop_nulls().n_unique(),
        )
        .with_columns(
            bounded_utilization=pl.col("bounded_used_bytes")
            / pl.when(pl.col("bounded_quota_bytes") != 0).then(pl.col("bounded_quota_bytes"))
        )
        .sort("source", "day")
        .collect()
    )


COLUMNS = (
    "day", "snapshot_us", "volumes", "volumes_available", "volumes_attached",
    "volumes_degraded", "volumes_error", "volumes_other_status", "used_bytes", "inode_count",
    "bounded_quota_bytes", "bounded_used_bytes", "bounded_utilization", "unlimited_volumes",
    "hosts_diagnostic",
)  # fmt: skip


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A data dir with DAYS x HOURS snapshots ingested and a published warehouse."""
    data_dir = tmp_path_factory.mktemp("spark")
    data = DataDir.at(data_dir)
    with SimulatorServer(volumes=300, seed=21, token=TOKEN) as sim:
        api = VolumeApi(base_url=sim.url, token=TOKEN)
        for day in range(DAYS):
            for hour in HOURS:
                start = DEFAULT_START + timedelta(days=day, hours=hour)
                sim.set_clock(start + timedelta(minutes=5))
                land_raw(api, data, Window(start, start + timedelta(hours=1)))
                publish_lake(data, start)
    build_warehouse(data_dir)
    return data_dir


@pytest.fixture(scope="module")
def spark():
    pyspark_sql = pytest.importorskip(
        "pyspark.sql", reason="the spark group is not installed: uv sync --group spark"
    )
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.skip("no Java runtime for Spark: apt-get install default-jre-headless")
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("volcap-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.driver.memory", "1g")
        .config("spark.ui.showConsoleProgress", "false")
        # A few hundred rows: a quick JVM start and no code generation beat peak throughput
        # (roughly halves the test's time on a busy two-core machine).
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def spark_lake(lake, spark):
    """The lake as Spark sees it: Hive partition discovery over the table's root."""
    frame = spark.read.parquet(str(DataDir(lake).lake))
    frame.createOrReplaceTempView("volume_snapshots")
    return frame


def test_spark_reads_the_lake_with_its_types_and_partition_key(lake, spark_lake):
    types = {field.name: field.dataType.simpleString() for field in spark_lake.schema.fields}
    assert types == {
        "source": "string",
        "volume_id": "string",
        "name": "string",
        "created_at": "timestamp",  # an instant (TIMESTAMP_LTZ), not a wall-clock time
        "used_bytes": "bigint",
        "inode_count": "bigint",
        "mount_count": "int",
        "max_size_bytes": "bigint",
        "max_file_count": "bigint",
        "max_mounts": "int",
        "last_reconciled_at": "timestamp",
        "status": "string",
        "host_id": "string",
        "snapshot_at": "timestamp",
        "observed_at": "timestamp",
        "snapshot_date": "date",
    }
    with connect_published(lake) as con:
        expected = con.sql("select count(*) from volume_snapshots").fetchall()[0][0]
    assert spark_lake.count() == expected


def test_spark_reads_instants_as_utc(lake, spark, spark_lake):
    """Epoch microseconds agree with DuckDB, and the 23:00 snapshot stays on its own day."""
    rows = spark.sql(
        "select distinct unix_micros(snapshot_at) as us,"
        " date_format(snapshot_at, 'yyyy-MM-dd HH:mm') as utc,"
        " cast(snapshot_at as date) as day, snapshot_date"
        " from volume_snapshots order by us"
    ).collect()
    with connect_published(lake) as con:
        expected = con.sql(
            "select distinct epoch_us(snapshot_at) from volume_snapshots order by 1"
        ).fetchall()
    assert [r.us for r in rows] == [us for (us,) in expected]
    assert [r.utc for r in rows] == [
        f"2025-01-{6 + day:02d} {hour:02d}:00" for day in range(DAYS) for hour in HOURS
    ]
    assert all(r.day == r.snapshot_date for r in rows)


def test_spark_fleet_daily_equals_duckdb_to_the_byte(lake, spark, spark_lake):
    measures = ", ".join(COLUMNS[2:])
    got = [
        tuple(row)
        for row in spark.sql(
            f"select day, unix_micros(snapshot_at) as snapshot_us, {measures}"
            f" from ({FLEET_DAILY_SPARK_SQL})"
        ).collect()
    ]
    with connect_published(lake) as con:
        assert con.sql("select * from fleet_daily").columns == [
            "source",
            "day",
            "snapshot_at",
            *COLUMNS[2:],
        ], "fleet_daily changed: update FLEET_DAILY_SPARK_SQL (and the README)"
        expected = con.sql(
            f"select day, epoch_us(snapshot_at) as snapshot_us, {measures}"
            " from fleet_daily order by day"
        ).fetchall()
    assert len(expected) == DAYS
    # every kind of day-end row is present, so each column is exercised
    assert all(row[COLUMNS.index("unlimited_volumes")] > 0 for row in expected)
    assert all(row[COLUMNS.index("bounded_quota_bytes")] > 0 for row in expected)
    assert got == expected


def test_polars_fleet_daily_equals_duckdb_to_the_byte(lake):
    frame = fleet_daily_polars(DataDir(lake).lake).with_columns(
        snapshot_us=pl.col("snapshot_at").dt.epoch("us")
    )
    got = [tuple(row) for row in frame.select(COLUMNS).rows()]
    with connect_published(lake) as con:
        expected = con.sql(
            f"select day, epoch_us(snapshot_at) as snapshot_us, {', '.join(COLUMNS[2:])}"
            " from fleet_daily order by day"
        ).fetchall()
    assert len(expected) == DAYS
    assert got == expected


def test_spark_reads_every_parquet_mart_with_types_it_knows(lake, spark):
    """Each public table's Parquet form: every column typed (no binary or null type where the
    warehouse has a number, text or instant), instants as timestamps, the same row count."""
    # a day-grained table's Parquet form is a folder of one file per day, read whole
    marts = sorted((lake / "marts").glob("*.parquet")) + [lake / "marts" / t for t in DAY_EXPORTS]
    assert {path.stem for path in marts} >= set(PUBLIC_TABLES) - {"volume_snapshots"}
    with connect_published(lake) as con:
        for path in marts:
            frame = spark.read.parquet(str(path))
            kinds = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
            described = {
                row[0]: row[1] for row in con.execute(f'describe "{path.stem}"').fetchall()
            }
            assert set(kinds) == set(described), path.stem
            for column, kind in kinds.items():
                expected = described[column]
                assert kind != "binary" and kind != "void", (path.stem, column, kind)
                if expected.startswith("TIMESTAMP"):
                    assert kind == "timestamp", (path.stem, column, kind)
            count = con.execute(f'select count(*) from "{path.stem}"').fetchone()
            assert count is not None and frame.count() == count[0], path.stem
