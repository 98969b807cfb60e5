"""The ingestion assets end to end: simulator over HTTP → Dagster → raw landing → lake."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.contract import LAKE_SCHEMA
from pipelines.lake import DataDir
from pipelines.partitions import key_for_instant, snapshot_partitions
from pipelines.resources import LakeStore, VolumeApi
from simulator import DEFAULT_START

TOKEN = "canary-pipeline-7c2e"
PARTITIONS = snapshot_partitions(60)
ASSETS = build_ingestion_assets(PARTITIONS)


def materialize(url: str, data_dir, at, selection=None, **api) -> dg.ExecuteInJobResult:
    return dg.materialize(
        ASSETS,
        partition_key=key_for_instant(PARTITIONS, at),
        resources={
            "volume_api": VolumeApi(
                base_url=url, token=TOKEN, backoff_base=0.01, **{"max_attempts": 2, **api}
            ),
            "lake": LakeStore(data_dir=str(data_dir)),
        },
        selection=selection,
        raise_on_error=False,
    )


def lake_files(data_dir) -> list[str]:
    return sorted(
        str(p.relative_to(data_dir)) for p in (data_dir / "lake").rglob("*") if p.is_file()
    )


def tree(data_dir) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and ".locks" not in p.parts and ".staging" not in p.parts
    }


@pytest.fixture
def sim(simulator):
    return simulator(volumes=300, seed=11, token=TOKEN)


def test_two_partitions_publish_typed_hive_parquet(sim, tmp_path):
    for hours in (0, 1):
        at = DEFAULT_START + timedelta(days=3, hours=hours, minutes=5)
        sim.set_clock(at)
        assert materialize(sim.url, tmp_path, at).success
    assert lake_files(tmp_path) == [
        "lake/volume_snapshots/snapshot_date=2025-01-09/20250109T0000Z.parquet",
        "lake/volume_snapshots/snapshot_date=2025-01-09/20250109T0100Z.parquet",
    ]
    con = duckdb.connect()
    rel = con.sql(
        "select * from read_parquet($p, hive_partitioning = true)",
        params={"p": str(tmp_path / "lake/volume_snapshots/*/*.parquet")},
    )
    types = dict(zip(rel.columns, map(str, rel.types), strict=True))
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["mount_count"] == "INTEGER"
    assert types["used_bytes"] == "BIGINT"
    assert types["snapshot_date"] == "DATE"
    assert con.sql("select count(distinct snapshot_at) from rel").fetchall() == [(2,)]


def test_every_field_arrives_exactly(sim, tmp_path):
    """Lake rows equal the simulator's typed state at that instant (instants to the microsecond)."""
    at = DEFAULT_START + timedelta(days=5, hours=7, minutes=5)
    sim.set_clock(at)
    assert materialize(sim.url, tmp_path, at).success
    lake = pl.read_parquet(
        tmp_path / "lake/volume_snapshots/snapshot_date=2025-01-11/20250111T0700Z.parquet"
    )
    assert lake.schema == pl.Schema(LAKE_SCHEMA)
    truth = sim.fleet.snapshot(at).rename({"id": "volume_id"})
    cols = [c for c in truth.columns if c in LAKE_SCHEMA]
    expected = truth.select(cols).cast({c: LAKE_SCHEMA[c] for c in cols}).sort("volume_id")
    assert lake.select(cols).sort("volume_id").equals(expected)
    assert lake["observed_at"].unique().to_list() == [at.replace(microsecond=0)]
    assert lake["snapshot_at"].unique().to_list() == [at.replace(minute=0)]


def test_rerun_of_a_partition_replaces_it_never_duplicates(sim, tmp_path):
    at = DEFAULT_START + timedelta(days=3, minutes=5)
    sim.set_clock(at)
    assert materialize(sim.url, tmp_path, at).success
    first = tree(tmp_path)
    assert materialize(sim.url, tmp_path, at).success
    second = tree(tmp_path)
    assert sorted(first) == sorted(second)
    lake = [k for k in first if k.startswith("lake/")]
    assert len(lake) == 1
    assert pl.read_parquet(tmp_path / lake[0]).equals(pl.read_parquet(tmp_path / lake[0]))
    assert pl.read_parquet(tmp_path / lake[0])["volume_id"].is_duplicated().sum() == 0


def test_lake_partition_is_replayed_from_raw(sim, tmp_path):
    at = DEFAULT_START + timedelta(days=3, minutes=5)
    sim.set_clock(at)
    assert materialize(sim.url, tmp_path, at).success
    path = DataDir.at(tmp_path).lake_file(at.replace(minute=0))
    original = pl.read_parquet(path)
    path.unlink()
    sim.set_clock(at + timedelta(days=9))  # the API has moved on; replay needs no fetch
    result = materialize(sim.url, tmp_path, at, selection=["volume_snapshots"])
    assert result.success
    meta = result.asset_materializations_for_node("volume_snapshots")[0].metadata
    assert meta["replayed_from_raw"].value is True
    assert pl.read_parquet(path).equals(original)


def test_a_past_partition_cannot_be_fetched(sim, tmp_path):
    now = DEFAULT_START + timedelta(days=3, minutes=5)
    sim.set_clock(now)
    result = materialize(sim.url, tmp_path, now - timedelta(hours=2))
    assert not result.success
    assert lake_files(tmp_path) == []
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.zst"))


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(body=body([volume(1), volume(1)])), id="duplicate-ids"),
        pytest.param(Reply(body=b"<html/>", headers={"Content-Type": "text/html"}), id="html-200"),
        pytest.param(Reply(503, b"down"), id="server-down"),
        pytest.param(Reply(401, b"no"), id="unauthorized"),
        pytest.param(Reply(body=body([volume(1), volume(2)]), mode="stall"), id="stalled-peer"),
    ],
)
def test_a_rejected_snapshot_leaves_lake_and_raw_exactly_as_they_were(sim, tmp_path, reply):
    at = DEFAULT_START + timedelta(days=3, minutes=5)
    sim.set_clock(at)
    assert materialize(sim.url, tmp_path, at).success
    before = tree(tmp_path)
    with FaultServer([reply]) as bad:
        # The fault server's Date is "now", so pin the partition to now's window.
        from datetime import UTC, datetime

        limits = {"stall_timeout": 0.3, "fetch_deadline": 2}
        result = materialize(bad.url, tmp_path, datetime.now(UTC), **limits)
        result_same = materialize(bad.url, tmp_path, at, **limits)
    assert not result.success and not result_same.success
    assert tree(tmp_path) == before
    assert not any((tmp_path / ".staging").iterdir())


@pytest.mark.parametrize("bad_rows", [0, 1])
def test_the_lake_warns_when_rows_were_quarantined_within_the_limit(tmp_path, bad_rows):
    from datetime import UTC, datetime

    volumes = [volume(n) for n in range(1, 201)]
    for n in range(bad_rows):
        volumes[n] = volume(n + 1, used_bytes=-5)
    with FaultServer(lambda _: Reply(body=body(volumes))) as peer:
        result = materialize(peer.url, tmp_path, datetime.now(UTC))
    assert result.success  # 1 of 200 is within the 1% limit: the snapshot is published
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "no_rows_quarantined"
    assert check.passed == (bad_rows == 0)
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["rows_quarantined"].value == bad_rows
