"""`VOLCAP_DATA_DIR=s3://bucket/prefix`: the same ingest → build → report path as on a local
disk, against a real S3-compatible server (moto) on loopback, and a refused write loses nothing."""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from fakes.s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, RefusingProxy
from pipelines.compaction import compact_lake
from pipelines.ingest import publish_lake
from pipelines.resources import resolve_layout
from simulator import DEFAULT_START
from tests.reliability import harness as h
from tests.reliability.score import record
from tests.test_cli import volcap

BUCKET = "volcap-lake"
PREFIX = "fleets/eu-1"
TOKEN = "canary-s3-api-token-77ab"
DAY = DEFAULT_START + timedelta(days=2)


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3(BUCKET).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(s3: MotoS3) -> Iterator[RefusingProxy]:
    refusing = RefusingProxy(s3.endpoint).start()
    yield refusing
    refusing.stop()


@pytest.fixture
def world(simulator, tmp_path, s3, proxy, monkeypatch, request):
    """A simulator, a bucket prefix of its own, a local cache and a Dagster home."""
    sim = simulator(volumes=120, seed=11, token=TOKEN)
    prefix = f"{PREFIX}/{request.node.name}"
    env = {
        "VOLCAP_API_URL": sim.url,
        "VOLCAP_API_TOKEN": TOKEN,
        "VOLCAP_DATA_DIR": f"s3://{BUCKET}/{prefix}",
        "VOLCAP_CACHE_DIR": str(tmp_path / "cache"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": proxy.endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    (tmp_path / "dagster_home").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return sim, env, prefix, tmp_path / "cache"


def ingest(sim, env, at: datetime):
    sim.set_clock(at)
    return volcap("ingest", "--at", at.isoformat(), env=env)


def lake_objects(s3: MotoS3, prefix: str) -> dict[str, str]:
    return s3.objects(f"{prefix}/lake/")


def cached_lake(cache: Path) -> dict[str, bytes]:
    return {
        p.relative_to(cache).as_posix(): p.read_bytes() for p in (cache / "lake").rglob("*.parquet")
    }


def test_ingest_build_and_report_land_in_the_bucket_with_the_local_layout(world, s3, tmp_path):
    sim, env, prefix, cache = world
    for hour in (1, 2, 3):
        result = ingest(sim, env, DAY + timedelta(hours=hour, minutes=10))
        assert result.returncode == 0, result.stdout + result.stderr
    for command in ("build", "report"):
        result = volcap(command, env=env)
        assert result.returncode == 0, result.stdout + result.stderr

    keys = set(s3.objects(prefix + "/"))
    lake = sorted(k for k in keys if k.startswith(f"{prefix}/lake/"))
    assert lake == [
        f"{prefix}/lake/volume_snapshots/snapshot_date=2025-01-08/20250108T0{h}00Z.parquet"
        for h in (1, 2, 3)
    ]
    assert len([k for k in keys if k.endswith(".meta.json")]) == 3
    assert len([k for k in keys if k.endswith(".json.zst")]) == 3
    for artifact in ("warehouse.duckdb", "marts/volume_risk.parquet", "reports/capacity.html"):
        assert f"{prefix}/{artifact}" in keys, artifact

    # the lake in the bucket is read in place by another engine (polars' object-store reader)
    options = {
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_region": REGION,
        "aws_endpoint_url": s3.endpoint,
        "aws_allow_http": "true",
    }
    counts = (
        pl.scan_parquet(
            f"s3://{BUCKET}/{prefix}/lake/volume_snapshots/**/*.parquet",
            storage_options=options,
            hive_partitioning=True,
        )
        .group_by("snapshot_at")
        .len()
        .collect()
    )
    assert counts.height == 3 and counts["len"].min() == counts["len"].max() > 100

    # the uploaded warehouse is the one that was built, and opens on its own
    downloaded = tmp_path / "downloaded.duckdb"
    downloaded.write_bytes(s3.read(f"{prefix}/warehouse.duckdb"))
    assert downloaded.read_bytes() == (cache / "warehouse.duckdb").read_bytes()
    with duckdb.connect(str(downloaded), read_only=True) as con:
        volumes = con.execute("select count(*) from volumes").fetchone()[0]
        snapshots = con.execute("select count(distinct snapshot_at) from volume_snapshots")
        assert snapshots.fetchone()[0] == 3
    assert volumes == counts["len"].max()

    # the Dagster materialization says where the partition lives in the bucket
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("volume_snapshots"))
    assert event is not None and event.asset_materialization is not None
    uri = event.asset_materialization.metadata["object_uri"].value
    assert uri == f"s3://{BUCKET}/{lake[-1]}"

    # neither secret reaches the bucket
    for key in keys:
        body = s3.read(key)
        assert SECRET_KEY.encode() not in body and TOKEN.encode() not in body, key


def test_a_fresh_cache_rebuilds_the_same_warehouse_from_the_bucket(world, s3):
    sim, env, prefix, cache = world
    for hour in (4, 5):
        assert ingest(sim, env, DAY + timedelta(hours=hour, minutes=10)).returncode == 0
    assert volcap("build", env=env).returncode == 0
    with duckdb.connect(str(cache / "warehouse.duckdb"), read_only=True) as con:
        before = con.execute("select * from fleet_daily order by all").fetchall()

    shutil.rmtree(cache)  # another machine, or a lost disk: the bucket is the source of truth
    result = volcap("build", "--full", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(cached_lake(cache)) == sorted(
        k.removeprefix(prefix + "/") for k in lake_objects(s3, prefix)
    )
    with duckdb.connect(str(cache / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select * from fleet_daily order by all").fetchall() == before


def test_a_refused_lake_write_fails_the_ingest_and_loses_nothing(world, s3, proxy):
    sim, env, prefix, cache = world
    assert ingest(sim, env, DAY + timedelta(hours=6, minutes=10)).returncode == 0
    bucket_before, cache_before = lake_objects(s3, prefix), cached_lake(cache)

    with proxy.refusing(r"/lake/"):
        refused = ingest(sim, env, DAY + timedelta(hours=7, minutes=10))
    assert refused.returncode != 0
    assert proxy.refused, "the proxy saw no write to refuse"
    lines = (refused.stdout + refused.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "refused to write" in lines[0] and "403" in lines[0] and "AccessDenied" in lines[0]
    assert SECRET_KEY not in lines[0] and TOKEN not in lines[0]
    assert lake_objects(s3, prefix) == bucket_before
    assert cached_lake(cache) == cache_before

    # the write is allowed again: the rerun publishes the hour once
    assert ingest(sim, env, DAY + timedelta(hours=7, minutes=10)).returncode == 0
    after = lake_objects(s3, prefix)
    assert set(after) - set(bucket_before) == {
        f"{prefix}/lake/volume_snapshots/snapshot_date=2025-01-08/20250108T0700Z.parquet"
    }
    record("object store refuses a write", injected=1, survived=1, rows_lost=0, canary_hits=0)


def test_a_refused_warehouse_upload_keeps_the_published_warehouse(world, s3, proxy):
    sim, env, prefix, cache = world
    assert ingest(sim, env, DAY + timedelta(hours=8, minutes=10)).returncode == 0
    assert volcap("build", env=env).returncode == 0
    remote_before = s3.objects(f"{prefix}/warehouse.duckdb")
    local_before = (cache / "warehouse.duckdb").read_bytes()

    assert ingest(sim, env, DAY + timedelta(hours=9, minutes=10)).returncode == 0
    with proxy.refusing(r"/warehouse\.duckdb"):
        refused = volcap("build", env=env)
    assert refused.returncode != 0
    assert "refused to write" in refused.stdout + refused.stderr
    assert s3.objects(f"{prefix}/warehouse.duckdb") == remote_before
    assert (cache / "warehouse.duckdb").read_bytes() == local_before
    assert not list(cache.glob("warehouse.duckdb.*.building*")), (
        "a failed build leaves no leftovers"
    )
    record("object store refuses a write", injected=1, survived=1, rows_lost=0, canary_hits=0)


def test_compaction_replaces_the_hourly_objects_with_one_day_object(world, s3):
    sim, env, prefix, cache = world
    for hour in (10, 11, 12):
        assert ingest(sim, env, DAY + timedelta(hours=hour, minutes=10)).returncode == 0
    rows = pl.read_parquet(sorted((cache / "lake").rglob("*.parquet"))).height
    shutil.rmtree(cache / "lake")  # compaction must read the bucket, not a partial cache
    done = compact_lake(resolve_layout(), now=datetime(2025, 1, 10, tzinfo=UTC))
    assert [c.files_in for c in done] == [3]
    objects = lake_objects(s3, prefix)
    assert list(objects) == [
        f"{prefix}/lake/volume_snapshots/snapshot_date=2025-01-08/day-2025-01-08.parquet"
    ]
    assert done[0].rows == rows
    assert sorted(cached_lake(cache)) == [k.removeprefix(prefix + "/") for k in objects]


def test_a_partition_replays_from_the_raw_body_in_the_bucket(world, s3):
    sim, env, prefix, cache = world
    at = DAY + timedelta(hours=13, minutes=10)
    assert ingest(sim, env, at).returncode == 0
    key = f"{prefix}/lake/volume_snapshots/snapshot_date=2025-01-08/20250108T1300Z.parquet"
    landed = pl.read_parquet(s3.read(key))
    shutil.rmtree(cache)  # a new machine: only the bucket knows the raw body

    published = publish_lake(resolve_layout(), at.replace(minute=0))
    assert published.replayed
    assert pl.read_parquet(s3.read(key)).equals(landed)
    assert pl.read_parquet(published.path).equals(landed)


def test_killed_ingests_never_leave_a_partial_or_unreadable_object(world, s3, tmp_path, simulator):
    """SIGKILL writers at random instants and just before each rename (each after its upload):
    every lake object stays readable, and the next run converges bucket and cache."""
    _, env, prefix, cache = world
    sim = simulator(volumes=120, seed=11, token=h.CANARY)  # the harness's key
    rng = random.Random(7)
    (tmp_path / "cwd").mkdir()
    at = DAY + timedelta(hours=14, minutes=5)
    job = {
        "kind": "ingest",
        "url": sim.url,
        "data_dir": env["VOLCAP_DATA_DIR"],
        "env": env,
        "cwd": str(tmp_path / "cwd"),
    }
    sim.set_clock(at)
    assert h.run_to_end({**job, "at": at.isoformat()}) == 0
    started = h.now()
    assert h.run_to_end({**job, "at": at.isoformat()}) == 0
    duration = h.now() - started

    kills = 0
    for i in range(8):
        at = DAY + timedelta(hours=14 + i % 2, minutes=6 + i)
        sim.set_clock(at)  # a later instant: a different body replaces the partition
        attempt = {**job, "at": at.isoformat()}
        if i % 2:
            code = h.run_to_end({**attempt, "die_at_replace": rng.randint(1, 3)})
        else:
            code = h.kill_after(attempt, rng.uniform(0, duration))
        kills += code == -signal.SIGKILL
        for key in lake_objects(s3, prefix):
            frame = pl.read_parquet(s3.read(key))  # a partial object would not parse
            assert frame["volume_id"].is_unique().all(), key
        h.ingest(sim.url, env["VOLCAP_DATA_DIR"], at)  # the next run succeeds
        layout, hour = resolve_layout(), at.replace(minute=0)
        assert layout.remote is not None
        sidecar = json.loads(s3.read(f"{prefix}/{layout.remote.key(layout.raw_sidecar(hour))}"))
        published = pl.read_parquet(
            s3.read(f"{prefix}/{layout.remote.key(layout.lake_file(hour))}")
        )
        validation = sidecar["validation"]
        assert published.height == validation["rows_in"] - validation["rows_quarantined"]
    assert kills >= 4
    resolve_layout().pull_lake()
    assert sorted(cached_lake(cache)) == sorted(
        k.removeprefix(prefix + "/") for k in lake_objects(s3, prefix)
    )
    record(
        "crash on object storage",
        injected=kills,
        survived=kills,
        rows_lost=0,
        duplicate_rows=0,
        corrupt_files=0,
    )


def test_every_source_of_a_fleet_deployment_writes_to_the_same_bucket(monkeypatch, tmp_path):
    monkeypatch.setenv("VOLCAP_CACHE_DIR", str(tmp_path / "cache"))
    layout = resolve_layout(f"s3://{BUCKET}/{PREFIX}").for_source("eu-west")
    assert layout.remote is not None and layout.remote.url == f"s3://{BUCKET}/{PREFIX}"
    at = datetime(2025, 1, 8, 4, tzinfo=UTC)
    assert layout.remote.key(layout.lake_file(at)) == (
        "lake/volume_snapshots/snapshot_date=2025-01-08/20250108T0400Z.eu-west.parquet"
    )
    assert layout.remote.key(layout.raw_sidecar(at)) == (
        "raw/volume_snapshots/source=eu-west/snapshot_date=2025-01-08/20250108T0400Z.meta.json"
    )


def test_two_fleets_share_one_bucket(world, s3, simulator, tmp_path):
    _, env, prefix, cache = world
    eu, us = (simulator(volumes=60, seed=4, token=key) for key in ("eu-key-1234", "us-key-5678"))
    at = DAY + timedelta(hours=16, minutes=10)
    for sim in (eu, us):
        sim.set_clock(at)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[sources]]\nname = "eu-west"\nurl = "{eu.url}"\ntoken_env = "EU_KEY"\n\n'
        f'[[sources]]\nname = "us-east"\nurl = "{us.url}"\ntoken_env = "US_KEY"\n'
    )
    fleet = {
        **env,
        "VOLCAP_SOURCES": str(sources),
        "EU_KEY": "eu-key-1234",
        "US_KEY": "us-key-5678",
    }
    result = volcap("ingest", "--at", at.isoformat(), env=fleet)
    assert result.returncode == 0, result.stdout + result.stderr
    assert volcap("build", env=fleet).returncode == 0
    assert sorted(lake_objects(s3, prefix)) == [
        f"{prefix}/lake/volume_snapshots/snapshot_date=2025-01-08/20250108T1600Z.{name}.parquet"
        for name in ("eu-west", "us-east")
    ]
    with duckdb.connect(str(cache / "warehouse.duckdb"), read_only=True) as con:
        per_source = con.execute("select source, count(*) from volumes group by all order by 1")
        assert per_source.fetchall() == [("eu-west", 60), ("us-east", 60)]
