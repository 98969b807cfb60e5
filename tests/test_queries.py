"""Named queries (sql/report/): loaded with their declared parameters, run by name, and what
they tell the report on a small seeded lake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines import queries, report
from pipelines.models import models
from pipelines.warehouse import build_warehouse, connect_published
from tests import reportcase
from tests.lakegen import END, GIB, Volume, linear, snapshots, write_lake


def test_every_report_query_declares_its_parameters_and_none_is_a_model() -> None:
    found = queries.load_queries(queries.REPORT)
    assert {"at_risk", "already_full", "missing_snapshots"} <= found.keys()
    assert found["at_risk"].parameters == ("limit",)
    assert not found.keys() & models().keys()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("select 1", "no header comment", id="no-header"),
        pytest.param("-- one row\nselect 1", "no header comment", id="no-parameters-line"),
        pytest.param(
            "-- one row\n-- parameters: none\nselect $limit",
            r"undeclared parameters: \['limit'\]",
            id="undeclared",
        ),
    ],
)
def test_a_query_file_without_its_header_is_refused(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "broken.sql").write_text(text)
    with pytest.raises(ValueError, match=error):
        queries.load_queries("q", tmp_path)


def test_a_query_binds_exactly_its_parameters() -> None:
    con = duckdb.connect()
    con.execute(
        "create table volume_risk as select 1 as risk_rank, 'critical' as risk, 'full' as state"
    )
    assert queries.rows(con, queries.REPORT, "already_full", limit=5) == [
        {"risk_rank": 1, "risk": "critical", "state": "full"}
    ]
    with pytest.raises(ValueError, match=r"query already_full takes \['limit'\], was given \[\]"):
        queries.rows(con, queries.REPORT, "already_full")


def test_missing_snapshots_are_counted_per_source_like_the_check(tmp_path: Path) -> None:
    """An hour one source missed counts although the other source has it (the check's rule)."""
    volumes = [Volume("v", used=linear(100 * GIB, GIB))]
    hole = END - timedelta(hours=3)
    east = snapshots(volumes, hours=48, source="us-east")
    west = snapshots(volumes, hours=48, source="eu-west")
    write_lake(tmp_path, pl.concat([east, west.filter(pl.col("snapshot_at") != hole)]))
    build_warehouse(tmp_path)
    data = report.load(tmp_path)
    assert [(m["source"], m["snapshot_at"]) for m in data.missing] == [("eu-west", hole)]
    html = report.render(data)
    assert "missing snapshots</th><td>1 (first: " in html and " in eu-west)" in html


def test_every_at_risk_list_filters_the_one_risk_rank(tmp_path: Path) -> None:
    """Already full, time to full, mount pressure and the Dagster preview read volume_risk in
    risk_rank; none orders volumes its own way."""
    reportcase.build(tmp_path)
    with connect_published(tmp_path) as con:
        ranked = [
            row[0]
            for row in con.execute(
                "select volume_id from volume_risk order by risk_rank"
            ).fetchall()
        ]

        def ids(name: str, **params: object) -> list[str]:
            return [r["volume_id"] for r in queries.rows(con, queries.REPORT, name, **params)]

        full, at_risk = ids("already_full", limit=50), ids("at_risk", limit=50)
        mounts, top = ids("mount_pressure", limit=50), ids("top_at_risk", limit=10)
    for listed in (full, at_risk, mounts, top):
        assert listed == sorted(listed, key=ranked.index)
    assert full and at_risk and mounts
    assert top == (full + at_risk)[:10]
