"""The warehouse as BI tools see it: a catalog that explains itself, read through their drivers.

Superset (and many other tools) open DuckDB through SQLAlchemy and `duckdb-engine`; analysts
also use the DuckDB CLI (`make sql`). Both are exercised here on a published warehouse.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import multiprocessing
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from pipelines import catalog
from pipelines.lake import DataDir
from pipelines.models import models
from pipelines.warehouse import DAY_EXPORTS, PUBLIC_TABLES, build_warehouse
from simulator import DEFAULT_START, SimulatorServer
from tests.reliability import harness as h


def engine(path: Path) -> sa.Engine:
    """How a BI tool connects: read-only, a new connection per query (no pool to hold a build)."""
    return sa.create_engine(
        f"duckdb:///{path}", connect_args={"read_only": True}, poolclass=NullPool
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A warehouse built from two days of a small simulated fleet and the third day's first
    snapshot (fleet_forecast needs three end-of-day totals)."""
    data_dir = tmp_path_factory.mktemp("catalog") / "data"
    sim = SimulatorServer(volumes=60, seed=3, token=h.CANARY).start()
    try:
        at = DEFAULT_START + timedelta(minutes=5)
        for hour in range(0, 54, 6):
            sim.set_clock(at + timedelta(hours=hour))
            h.ingest(sim.url, data_dir, at + timedelta(hours=hour))
    finally:
        sim.stop()
    # compacted (as a build whose file is a quarter free blocks is): the readers read the copy
    build_warehouse(data_dir, compact_free_share=0.0)
    return data_dir


def test_the_readme_data_model_is_rendered_from_the_sql_headers():
    assert catalog.main(["--check"]) == 0, "run: python -m pipelines.catalog"


def test_every_model_header_describes_its_table_in_a_summary():
    for model in models().values():
        assert model.summary, model.name
        assert model.columns, model.name


def test_every_public_table_and_column_carries_its_description(published):
    # closed at the end: a connection left open would make the driver tests' differently
    # configured connections to the same file fail
    with duckdb.connect(str(DataDir(published).warehouse), read_only=True) as con:
        tables = dict(
            con.execute(
                "select table_name, comment from duckdb_tables() where schema_name = 'main' "
                "union all select view_name, comment from duckdb_views() where schema_name = 'main'"
            ).fetchall()
        )
        for table in PUBLIC_TABLES:
            assert tables[table] == models()[table].summary
            columns = con.execute(
                "select column_name, comment from duckdb_columns() "
                "where schema_name = 'main' and table_name = ?",
                [table],
            ).fetchall()
            undocumented = [name for name, comment in columns if not comment]
            assert undocumented == [], f"{table}: {undocumented}"
            # every column a header documents exists (a renamed one leaves no stale description)
            stale = set(models()[table].columns) - {name for name, _ in columns}
            assert stale == set(), f"{table}: {stale}"


def test_duckdb_engine_lists_each_public_table_with_its_descriptions(published):
    inspector = sa.inspect(engine(DataDir(published).warehouse))
    listed = set(inspector.get_table_names()) | set(inspector.get_view_names())
    assert set(PUBLIC_TABLES) <= listed
    for table in PUBLIC_TABLES:
        assert inspector.get_table_comment(table)["text"] == models()[table].summary
        for column in inspector.get_columns(table):
            assert column["comment"], f"{table}.{column['name']}"
            # every type maps: SQLAlchemy's NullType means the driver did not know it
            assert not isinstance(column["type"], sa.types.NullType), (table, column)


def test_through_duckdb_engine_every_public_table_reads_with_aware_timestamps(published):
    with engine(DataDir(published).warehouse).connect() as con:
        for table in PUBLIC_TABLES:
            result = con.execute(sa.text(f'select * from "{table}" limit 50'))
            rows = result.fetchall()
            if table != "quota_events":  # a two-day fleet may change no limit
                assert rows, table
            for row in rows:
                for value in row:
                    if isinstance(value, dt.datetime):
                        assert value.tzinfo is not None, table


def test_the_duckdb_cli_lists_the_catalog_read_only(published):
    cli = Path(sys.executable).with_name("duckdb")
    if not cli.exists():
        cli = Path(shutil.which("duckdb") or "duckdb")
    out = subprocess.run(
        [
            str(cli),
            "-readonly",
            str(DataDir(published).warehouse),
            "-csv",
            "-noheader",
            "-c",
            "select table_name, comment from duckdb_tables() where schema_name = 'main' "
            "union all select view_name, comment from duckdb_views() "
            "where schema_name = 'main' and not internal order by 1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    listed = dict(csv.reader(io.StringIO(out)))
    assert set(PUBLIC_TABLES) <= set(listed)
    assert {table: listed[table] for table in PUBLIC_TABLES} == {
        table: models()[table].summary for table in PUBLIC_TABLES
    }


def _read_while_builds_publish(path: str, stop: str, out: Any) -> None:
    """A BI tool refreshing: each round a new read-only connection through duckdb-engine."""
    rounds, errors, torn, messages = 0, 0, 0, []
    bi = engine(Path(path))
    while not Path(stop).exists():
        try:
            with bi.connect() as con:
                forecast = con.execute(
                    sa.text("select count(distinct as_of), max(as_of) from quota_forecast")
                ).one()
                risk = con.execute(sa.text("select max(as_of) from volume_risk")).scalar()
                latest = con.execute(
                    sa.text("select max(snapshot_at) from volume_snapshots")
                ).scalar()
                # one build, whole: every table agrees on the build's instant
                torn += forecast[0] != 1 or not (forecast[1] == risk == latest)
            rounds += 1
        except Exception as error:  # counted; the test fails on any
            errors += 1
            messages.append(f"{type(error).__name__}: {str(error)[:200]}")
    out.put({"rounds": rounds, "errors": errors, "torn": torn, "messages": messages[:5]})


def test_a_bi_driver_reads_throughout_ten_builds_and_sees_each_new_one(tmp_path, simulator):
    sim = simulator(volumes=120, seed=5, token=h.CANARY)
    data_dir = tmp_path / "data"
    at = DEFAULT_START + timedelta(minutes=5)
    sim.set_clock(at)
    h.ingest(sim.url, data_dir, at)
    build_warehouse(data_dir)
    stop = tmp_path / "stop"
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    reader = spawn.Process(
        target=_read_while_builds_publish,
        args=(str(DataDir(data_dir).warehouse), str(stop), out),
        daemon=True,
    )
    reader.start()
    bi = engine(DataDir(data_dir).warehouse)
    for _ in range(10):
        at += timedelta(hours=1)
        sim.set_clock(at)
        h.ingest(sim.url, data_dir, at)
        result = build_warehouse(data_dir)
        # the next connection sees the new build
        with bi.connect() as con:
            latest = con.execute(sa.text("select max(snapshot_at) from volume_snapshots")).scalar()
        assert latest == result.as_of
    stop.touch()
    seen = out.get(timeout=120)
    reader.join(60)
    assert seen["errors"] == 0, seen["messages"]
    assert seen["torn"] == 0
    assert seen["rounds"] >= 10


def test_pyarrow_reads_every_parquet_mart_with_instants_in_utc(published):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # closed at the end: a connection left open would make the driver tests' differently
    # configured connections to the same file fail
    with duckdb.connect(str(DataDir(published).warehouse), read_only=True) as con:
        marts = [(path.stem, path) for path in sorted((published / "marts").glob("*.parquet"))]
        # a day-grained table's Parquet form is a folder of one file per day
        for table in DAY_EXPORTS:
            marts += [(table, path) for path in sorted((published / "marts" / table).glob("*"))]
        assert {table for table, _ in marts} == set(PUBLIC_TABLES) - {"volume_snapshots"}
        for table, path in marts:
            schema = pq.read_schema(path)
            warehouse = dict(
                con.execute(
                    "select column_name, data_type from duckdb_columns() where table_name = ?",
                    [table],
                ).fetchall()
            )
            assert set(schema.names) == set(warehouse), table
            for field in schema:
                assert not pa.types.is_null(field.type), (table, field.name)
                if warehouse[field.name] == "TIMESTAMP WITH TIME ZONE":
                    assert pa.types.is_timestamp(field.type) and field.type.tz == "UTC", field


def test_the_default_schema_holds_exactly_the_public_tables(published):
    by_schema: dict[str, set[str]] = {}
    with duckdb.connect(str(DataDir(published).warehouse), read_only=True) as con:
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "union all select schema_name, view_name from duckdb_views() where not internal"
        ).fetchall():
            by_schema.setdefault(schema, set()).add(table)
    assert by_schema.pop("main") == set(PUBLIC_TABLES)
    # the build inputs: models that are not public, the engine's kept steps and replays, and
    # its lake view
    assert by_schema.pop("staging") == {m for m in models() if m not in PUBLIC_TABLES} | {
        "volume_observation_steps",
        "volcap_replay",
        "lake_volume_snapshots",
    }
    assert by_schema.pop("build") == {"_build_info", "_build_manifest"}
    assert by_schema == {}
    # as a BI tool browses it: duckdb-engine names schemas `<database>.<schema>`, the
    # database being the file's stem
    inspector = sa.inspect(engine(DataDir(published).warehouse))
    assert {"warehouse.main", "warehouse.staging", "warehouse.build"} <= set(
        inspector.get_schema_names()
    )
    listed = inspector.get_table_names(schema="warehouse.main") + inspector.get_view_names(
        schema="warehouse.main"
    )
    assert sorted(listed) == sorted(PUBLIC_TABLES)  # volume_snapshots is a view
