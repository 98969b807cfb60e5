"""A tenant with no volumes yet answers `[]`: that ingests, builds an empty warehouse and reports
"no volumes yet"; a non-empty fleet collapsing to nothing is still refused by the floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import duckdb
import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines import cli, report
from pipelines.ingest import Window, land_raw
from pipelines.lake import DataDir
from pipelines.models import models
from pipelines.normalize import SnapshotRejected
from pipelines.resources import VolumeApi
from pipelines.warehouse import PUBLIC_TABLES

TOKEN = "canary-empty-5b1e"


def volcap(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The real `volcap` command in process: its one line on stdout, after exit status 0."""
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture
def empty_fleet(simulator, tmp_path, monkeypatch):
    """A simulator with no volumes whose clock is the last two hours; the CLI pointed at it."""
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    sim = simulator(volumes=0, seed=3, token=TOKEN, start=start)
    for name in ("VOLCAP_SOURCES", "VOLCAP_CADENCE_MINUTES", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOLCAP_API_URL", sim.url)
    monkeypatch.setenv("VOLCAP_API_TOKEN", TOKEN)
    monkeypatch.setenv("VOLCAP_DATA_DIR", str(tmp_path / "data"))
    return sim, [start + timedelta(minutes=5), start + timedelta(hours=1, minutes=5)]


def test_an_empty_fleet_ingests_builds_an_empty_warehouse_and_reports_no_volumes_yet(
    empty_fleet, tmp_path, capsys
):
    sim, instants = empty_fleet
    for at in instants:
        sim.set_clock(at)
        line = volcap(capsys, "ingest", "--at", at.isoformat())
        assert line.startswith("ingested 0 volumes for partition ")

    line = volcap(capsys, "build")
    assert line.startswith(f"built {len(models())} tables (0 rows; volume_risk 0)")
    with duckdb.connect(str(DataDir(tmp_path / "data").warehouse), read_only=True) as con:
        for table in PUBLIC_TABLES:
            assert con.execute(f'select count(*) from "{table}"').fetchone() == (0,), table
        # queryable with its columns, not a placeholder
        assert con.execute("select volume_id, risk from volume_risk").fetchall() == []

    line = volcap(capsys, "report")
    assert (
        line
        == f"report written to {tmp_path / 'data' / 'reports' / 'capacity.html'}: no volumes yet"
    )
    html = (tmp_path / "data" / "reports" / "capacity.html").read_text()
    assert 'id="no-volumes"' in html and "No volumes yet" in html
    assert "no volumes yet: no snapshot has listed one" in html
    latest = instants[-1].replace(minute=0)
    assert f"As of {report.human_date(latest, with_time=True)} · no volumes yet" in html


def test_the_checks_on_an_empty_warehouse_pass_or_say_why_they_were_skipped(empty_fleet, capsys):
    sim, instants = empty_fleet
    for at in instants:
        sim.set_clock(at)
        volcap(capsys, "ingest", "--at", at.isoformat())
    from pipelines.definitions import defs

    result = defs.resolve_job_def("build_job").execute_in_process(raise_on_error=False)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "unique_volume_snapshots",
        "no_negative_counts",
        "latest_snapshot_fresh",
        "no_missing_snapshots",
        "row_count_stable",
        "forecast_sane",
        "interval_coverage",
    }
    assert all(e.passed for e in evaluations.values()), evaluations
    skipped = {
        name
        for name, e in evaluations.items()
        if "no volumes yet" in str(getattr(e.metadata.get("skipped"), "value", ""))
    }
    assert skipped == {"no_missing_snapshots", "row_count_stable"}
    fresh = evaluations["latest_snapshot_fresh"].metadata
    assert fresh["latest_snapshot_at"].value == instants[-1].replace(minute=0).isoformat()
    assert "no volumes yet" in fresh["note"].value


def _land(data_dir, hour: int, count: int):
    at = datetime(2025, 3, 3, hour, 4, tzinfo=UTC)
    reply = Reply(
        body=body([volume(n) for n in range(1, count + 1)]), date=format_datetime(at, usegmt=True)
    )
    window = Window(at.replace(minute=0), at.replace(minute=0) + timedelta(hours=1))
    with FaultServer([reply]) as srv:
        return land_raw(VolumeApi(base_url=srv.url, token=TOKEN), DataDir.at(data_dir), window)


def test_a_fleet_that_stays_empty_never_trips_the_volume_count_floor(tmp_path):
    for hour in range(5):
        assert _land(tmp_path, hour, 0).normalized.rows_in == 0


def test_a_fleet_collapsing_to_empty_is_still_refused_by_the_floor(tmp_path):
    for hour in range(4):
        _land(tmp_path, hour, 50)
    before = sorted(p for p in (tmp_path / "lake").rglob("*") if p.is_file())
    with pytest.raises(SnapshotRejected, match="implausible drop in volume count: 0 volumes"):
        _land(tmp_path, 4, 0)
    assert sorted(p for p in (tmp_path / "lake").rglob("*") if p.is_file()) == before
