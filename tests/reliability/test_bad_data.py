"""Bad-data policy through the real assets: the volume-count floor, the quarantine check, and
upstream 5xx runs that must leave the lake untouched."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import dagster as dg
import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.ingest import check_volume_count, land_raw, recent_volume_counts
from pipelines.lake import DataDir
from pipelines.normalize import SnapshotRejected
from pipelines.partitions import key_for_instant, snapshot_partitions
from pipelines.resources import LakeStore, VolumeApi
from simulator import DEFAULT_START
from tests.reliability import harness as h
from tests.reliability.score import record

PARTITIONS = snapshot_partitions(60)
ASSETS = build_ingestion_assets(PARTITIONS)
START = DEFAULT_START + timedelta(days=2)


def _land(data_dir, hour: int, count: int, **kw):
    at = START + timedelta(hours=hour, minutes=4)
    reply = Reply(
        body=body([volume(n) for n in range(1, count + 1)]), date=format_datetime(at, usegmt=True)
    )
    with FaultServer([reply]) as srv:
        return land_raw(h.api(srv.url), DataDir.at(data_dir), h.hour_window(at), **kw)


def _tree(data_dir):
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and ".staging" not in p.parts and ".locks" not in p.parts
    }


def test_an_implausible_drop_in_volume_count_fails_the_snapshot_before_publishing(tmp_path):
    for hour, count in enumerate([100, 104, 98, 101]):
        _land(tmp_path, hour, count)
    assert recent_volume_counts(DataDir.at(tmp_path), START + timedelta(hours=4), 24) == [
        101,
        98,
        104,
        100,
    ]
    before = _tree(tmp_path)
    with pytest.raises(SnapshotRejected, match="implausible drop in volume count: 40 volumes"):
        _land(tmp_path, 4, 40)
    assert _tree(tmp_path) == before
    _land(tmp_path, 4, 40, min_volume_share=0.0)  # the documented override for a real shrink
    _land(tmp_path, 5, 60)  # 60% of the median passes the default 50% floor
    record("bad data (volume-count floor)", injected=1, survived=1, rows_lost=0)


@pytest.mark.parametrize(
    ("recent", "rows_in", "fails"),
    [
        pytest.param([], 0, False, id="no-history"),
        pytest.param([100, 100], 1, False, id="too-little-history"),
        pytest.param([100, 100, 100], 49, True, id="below-half"),
        pytest.param([100, 100, 100], 50, False, id="at-half"),
        pytest.param([10, 100, 100, 100, 1000], 40, True, id="median-not-mean"),
    ],
)
def test_volume_count_floor(recent, rows_in, fails):
    if fails:
        with pytest.raises(SnapshotRejected):
            check_volume_count(rows_in, recent, min_share=0.5)
    else:
        check_volume_count(rows_in, recent, min_share=0.5)


def _materialize(url, data_dir, at):
    return dg.materialize(
        ASSETS,
        partition_key=key_for_instant(PARTITIONS, at),
        resources={
            "volume_api": VolumeApi(
                base_url=url, token=h.CANARY, backoff_base=0.01, max_attempts=3
            ),
            "lake": LakeStore(data_dir=str(data_dir)),
        },
        raise_on_error=False,
    )


def test_quarantined_rows_are_counted_and_checked(tmp_path):
    at = START + timedelta(minutes=7)
    rows = [volume(n) for n in range(1, 200)] + [volume(999, used_bytes=-5)]
    with FaultServer([Reply(body=body(rows), date=format_datetime(at, usegmt=True))]) as srv:
        result = _materialize(srv.url, tmp_path, at)
    assert result.success
    meta = result.asset_materializations_for_node("volume_snapshots")[0].metadata
    assert meta["rows_quarantined"].value == 1
    assert meta["dagster/row_count"].value == 199
    (check,) = result.get_asset_check_evaluations()
    # published (within the limit), and flagged: the warn-severity check fails on any quarantine
    assert check.check_name == "no_rows_quarantined" and not check.passed
    assert check.metadata["share"].value == pytest.approx(0.005)
    assert DataDir.at(tmp_path).quarantine_file(at.replace(minute=0)).exists()


def test_a_5xx_run_through_the_assets_leaves_the_lake_untouched_then_recovers(tmp_path, simulator):
    sim = simulator(volumes=100, seed=8, token=h.CANARY)
    at = START + timedelta(minutes=9)
    sim.set_clock(at)
    assert _materialize(sim.url, tmp_path, at).success
    before = _tree(tmp_path)
    sim.set_clock(at + timedelta(minutes=20))
    sim.inject_faults(503, count=3)
    failed = _materialize(sim.url, tmp_path, at)
    assert not failed.success
    assert _tree(tmp_path) == before
    sim.inject_faults(502, count=2)
    recovered = _materialize(sim.url, tmp_path, at)
    assert recovered.success
    assert (
        recovered.asset_materializations_for_node("raw_volume_snapshots")[0]
        .metadata["attempts"]
        .value
        == 3
    )
    assert h.audit(tmp_path).clean
    record("upstream 5xx via assets", injected=5, survived=5, rows_lost=0, corrupt_files=0)
