"""The fleet simulator: the provider's list endpoint over real loopback HTTP, and the fleet model."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import yaml

from simulator import SCENARIOS, Fleet, SimulatorServer
from simulator.clock import SimClock, parse_instant

CONTRACT = Path(__file__).resolve().parents[1] / "api" / "volumes.openapi.yaml"
START = datetime(2025, 1, 6, tzinfo=UTC)
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
INT_RANGES = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}
ALL_FIELDS = (
    "id,name,created_at,host_id,used_bytes,inode_count,mount_count,"
    "max_size_bytes,max_file_count,max_mounts,last_reconciled_at,status"
)


@pytest.fixture(scope="module")
def volume_schema() -> dict[str, Any]:
    return yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]["Volume"]


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(volumes=2_000, seed=7, start=START)


@pytest.fixture
def sim(simulator) -> SimulatorServer:
    return simulator(volumes=400, seed=3, token=TOKEN, start=START, forbidden_token="read-only")


def get_volumes(sim: SimulatorServer, **params: str) -> httpx.Response:
    return httpx.get(f"{sim.url}/v1/volumes", headers=AUTH, params=params, timeout=30)


def schema_errors(obj: dict[str, Any], schema: dict[str, Any], masked: bool) -> list[str]:
    """The few JSON Schema keywords the contract uses, checked by hand."""
    errors = []
    if not masked:
        errors += [f"missing {k}" for k in schema["required"] if k not in obj]
    for key, value in obj.items():
        prop = schema["properties"].get(key)
        if prop is None:
            errors.append(f"undocumented field {key}")
            continue
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        if value is None:
            if "null" not in types:
                errors.append(f"{key} is null")
            continue
        if "integer" in types:
            lo, hi = INT_RANGES[prop["format"]]
            if type(value) is not int or not lo <= value <= hi:
                errors.append(f"{key}={value!r} is not {prop['format']}")
        elif "string" in types:
            if not isinstance(value, str) or not value:
                errors.append(f"{key}={value!r} is not a non-empty string")
            elif prop.get("format") == "date-time" and not RFC3339.match(value):
                errors.append(f"{key}={value!r} is not RFC 3339")
        if "enum" in prop and value not in prop["enum"]:
            errors.append(f"{key}={value!r} not in {prop['enum']}")
    return errors


# -- the HTTP contract ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="empty-token"),
    ],
)
def test_list_without_a_valid_token_is_401(sim: SimulatorServer, headers: dict[str, str]) -> None:
    r = httpx.get(f"{sim.url}/v1/volumes", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


def test_list_with_a_forbidden_token_is_403(sim: SimulatorServer) -> None:
    r = httpx.get(f"{sim.url}/v1/volumes", headers={"Authorization": "Bearer read-only"})
    assert r.status_code == 403


@pytest.mark.parametrize(
    "mask",
    ["bogus", "id,bogus", "", "id,", ",id", "id name", "ID", "id,,name", "id;name"],
    ids=repr,
)
def test_malformed_field_mask_is_400(sim: SimulatorServer, mask: str) -> None:
    r = get_volumes(sim, fields=mask)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_fields"


@pytest.mark.parametrize(
    "mask", ["id", "id,used_bytes", "status,id", "last_reconciled_at,max_size_bytes,id", ALL_FIELDS]
)
def test_field_mask_returns_only_the_named_fields(sim: SimulatorServer, mask: str) -> None:
    """host_id is named but present only on legacy volumes; every other named field always is."""
    named = set(mask.split(","))
    volumes = get_volumes(sim, fields=mask).json()
    assert volumes
    for v in volumes:
        assert set(v) - {"host_id"} == named - {"host_id"}
        assert set(v) <= named


def test_host_id_is_omitted_unless_requested_and_then_only_on_legacy_volumes(
    sim: SimulatorServer,
) -> None:
    assert not any("host_id" in v for v in get_volumes(sim).json())
    masked = get_volumes(sim, fields="id,host_id").json()
    with_host = [v for v in masked if "host_id" in v]
    assert 0 < len(with_host) < len(masked) / 5
    assert all(isinstance(v["host_id"], str) and v["host_id"] for v in with_host)


@pytest.mark.parametrize("days", [0, 9.3, 30])
def test_every_volume_matches_the_contract_schema(
    sim: SimulatorServer, volume_schema: dict[str, Any], days: float
) -> None:
    sim.set_clock(START + timedelta(days=days))
    for mask in (None, ALL_FIELDS):
        volumes = (get_volumes(sim, fields=mask) if mask else get_volumes(sim)).json()
        for v in volumes:
            assert schema_errors(v, volume_schema, masked=mask is not None) == [], v
        ids = [v["id"] for v in volumes]
        assert len(ids) == len(set(ids))


def test_body_is_the_typed_snapshot_with_exact_instants(sim: SimulatorServer) -> None:
    """Every text timestamp names exactly the instant the model holds, whatever its offset."""
    at = START + timedelta(days=12, hours=5)
    sim.set_clock(at)
    body = get_volumes(sim, fields=ALL_FIELDS).json()
    snap = sim.fleet.snapshot(at)
    assert [v["id"] for v in body] == snap["id"].to_list()
    for v, row in zip(body, snap.iter_rows(named=True), strict=True):
        assert parse_instant(v["created_at"]) == row["created_at"]
        lrc = v["last_reconciled_at"]
        assert (parse_instant(lrc) if lrc else None) == row["last_reconciled_at"]
        for key in ("name", "used_bytes", "inode_count", "mount_count", "max_size_bytes",
                    "max_file_count", "max_mounts", "status"):  # fmt: skip
            assert v[key] == row[key], key
        assert v.get("host_id") == row["host_id"]


def test_timestamps_mix_utc_offsets_and_fraction_digits(sim: SimulatorServer) -> None:
    texts = [v["created_at"] for v in get_volumes(sim, fields="created_at").json()]
    assert any(t.endswith("Z") and "." not in t for t in texts)
    assert any(re.search(r"\.\d{3}Z$", t) for t in texts)
    assert any(re.search(r"[+-]\d{2}:\d{2}$", t) and "." not in t for t in texts)
    assert any(re.search(r"\.\d[+-]\d{2}:\d{2}$", t) for t in texts)
    assert any(t.endswith("+05:30") for t in texts)


def test_names_include_characters_that_break_naive_code(sim: SimulatorServer) -> None:
    names = [v["name"] for v in get_volumes(sim, fields="name").json()]
    for needle in ("/", " ", '"', "\\", "\t", "数", "📦"):
        assert any(needle in n for n in names), needle


def test_date_header_is_the_simulated_clock(sim: SimulatorServer) -> None:
    r = get_volumes(sim, fields="id")
    assert r.headers["Date"] == "Mon, 06 Jan 2025 00:00:00 GMT"
    sim.set_clock(datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC))
    sim.advance(60)
    r = get_volumes(sim, fields="id")
    assert r.headers["Date"] == "Mon, 03 Feb 2025 04:06:06 GMT"
    assert httpx.get(f"{sim.url}/nope").headers["Date"] == "Mon, 03 Feb 2025 04:06:06 GMT"


def test_body_reflects_the_state_at_the_simulated_instant(sim: SimulatorServer) -> None:
    at = START + timedelta(days=3, minutes=17)
    sim.set_clock(at)
    r = get_volumes(sim)
    assert r.content == sim.fleet.render_json(at)
    assert r.headers["Content-Length"] == str(len(r.content))
    sim.advance(6 * 3600)
    assert get_volumes(sim).content != r.content


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/volume", "/v1/volumes/vol-1", "/v2/volumes"])
def test_other_paths_are_404(sim: SimulatorServer, path: str) -> None:
    assert httpx.get(f"{sim.url}{path}", headers=AUTH).status_code == 404


def test_clock_control_endpoints(sim: SimulatorServer) -> None:
    assert httpx.get(f"{sim.url}/_sim/clock").json() == {"now": "2025-01-06T00:00:00Z"}
    r = httpx.post(f"{sim.url}/_sim/clock", json={"now": "2025-03-01T12:00:00+02:00"})
    assert r.json() == {"now": "2025-03-01T10:00:00Z"}
    r = httpx.post(f"{sim.url}/_sim/clock", json={"advance_seconds": 90})
    assert r.json() == {"now": "2025-03-01T10:01:30Z"}
    assert sim.now() == datetime(2025, 3, 1, 10, 1, 30, tzinfo=UTC)
    assert httpx.post(f"{sim.url}/_sim/clock", content=b"not json").status_code == 400


def test_running_clock_advances_at_its_speed() -> None:
    clock = SimClock(START, speed=3600.0)
    time.sleep(0.01)
    assert clock.now() > START
    assert clock.now().microsecond == 0


def test_injected_faults_fail_the_next_requests(sim: SimulatorServer) -> None:
    httpx.post(f"{sim.url}/_sim/faults", json={"status": 429, "count": 2, "retry_after": 3})
    for _ in range(2):
        r = get_volumes(sim, fields="id")
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "3"
    assert get_volumes(sim, fields="id").status_code == 200


def test_scenarios_endpoint_names_existing_volumes(sim: SimulatorServer) -> None:
    scenarios = httpx.get(f"{sim.url}/_sim/scenarios").json()
    assert set(scenarios) == set(SCENARIOS)
    at_start = {v["id"] for v in get_volumes(sim, fields="id").json()}
    for name, ids in scenarios.items():
        assert ids, name
        assert (set(ids) <= at_start) == (name != "created"), name


def test_truth_at_last_reconciliation_equals_served_usage(sim: SimulatorServer) -> None:
    """Served usage is the true usage as of last_reconciled_at, stalled volumes included."""
    sim.set_clock(START + timedelta(days=4, hours=7))
    served = get_volumes(sim, fields="id,used_bytes,inode_count,last_reconciled_at").json()
    stale = set(httpx.get(f"{sim.url}/_sim/scenarios").json()["stale"])
    sample = [v for v in served if v["last_reconciled_at"]][::25] + [
        v for v in served if v["id"] in stale
    ]
    for v in sample:
        truth = httpx.get(
            f"{sim.url}/_sim/truth",
            params={"at": v["last_reconciled_at"], "volume_id": v["id"]},
        ).json()["volumes"]
        assert len(truth) == 1
        assert (truth[0]["used_bytes"], truth[0]["inode_count"]) == (
            v["used_bytes"],
            v["inode_count"],
        ), v["id"]


def test_determinism_same_seed_same_body_other_seed_differs() -> None:
    at = START + timedelta(days=2, hours=3)
    a = Fleet(300, seed=11, start=START).render_json(at)
    assert a == Fleet(300, seed=11, start=START).render_json(at)
    assert a != Fleet(300, seed=12, start=START).render_json(at)


# -- fleet behaviour over time -------------------------------------------------------------------


@pytest.fixture(scope="module")
def month(fleet: Fleet) -> pl.DataFrame:
    """Served snapshots every 6 hours for 30 days."""
    frames = [
        fleet.snapshot(START + timedelta(hours=6 * k)).with_columns(k=pl.lit(k))
        for k in range(4 * 30 + 1)
    ]
    return pl.concat(frames).sort("id", "k")


def test_volumes_are_created_and_deleted_over_a_month(month: pl.DataFrame) -> None:
    first = set(month.filter(k=0)["id"])
    last = set(month.filter(k=month["k"].max())["id"])
    assert len(last - first) > 20
    assert len(first - last) > 20


def test_cleanups_and_quota_raises_happen(month: pl.DataFrame) -> None:
    steps = month.with_columns(
        prev_used=pl.col("used_bytes").shift().over("id"),
        prev_quota=pl.col("max_size_bytes").shift().over("id"),
    )
    drops = steps.filter(pl.col("used_bytes") < 0.6 * pl.col("prev_used"))
    raises = steps.filter(pl.col("max_size_bytes") > pl.col("prev_quota"))
    assert drops["id"].n_unique() >= 10
    assert raises["id"].n_unique() >= 10


def test_reconciliation_lags_and_sometimes_stalls(month: pl.DataFrame) -> None:
    snapshot_at = pl.lit(START) + pl.duration(hours=6 * pl.col("k"))
    lag = month.select("id", "last_reconciled_at", lag=(snapshot_at - pl.col("last_reconciled_at")))
    assert (lag["lag"].drop_nulls() >= timedelta(0)).all()
    assert lag.filter(pl.col("lag") < timedelta(minutes=20)).height > 0.9 * lag.height
    assert lag.filter(pl.col("lag") > timedelta(days=1))["id"].n_unique() >= 10


def test_new_volumes_are_unreconciled_and_empty_for_their_first_minutes(fleet: Fleet) -> None:
    created = fleet.scenario_ids()["created"]
    first = fleet.snapshot(START + timedelta(days=30)).filter(pl.col("id").is_in(created))
    for row in first.iter_rows(named=True):
        young = fleet.snapshot(row["created_at"] + timedelta(seconds=30))
        v = young.row(by_predicate=pl.col("id") == row["id"], named=True)
        assert (v["last_reconciled_at"], v["used_bytes"], v["inode_count"]) == (None, 0, 0)
    assert first.height == len(created)
    assert first["last_reconciled_at"].null_count() == 0


def test_fleet_has_full_unlimited_and_every_status(month: pl.DataFrame) -> None:
    assert month.filter(pl.col("used_bytes") >= pl.col("max_size_bytes")).height > 0
    assert month["max_size_bytes"].null_count() > 0
    assert month["max_file_count"].null_count() > 0
    assert month["max_mounts"].null_count() > 0
    assert set(month["status"]) == {"available", "attached", "degraded", "error"}
    at_limit = month.filter(pl.col("mount_count") == pl.col("max_mounts"))
    assert at_limit.height > 0
    assert month.filter(pl.col("mount_count") > pl.col("max_mounts")).height == 0


# -- truth ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth_day30(fleet: Fleet) -> pl.DataFrame:
    return fleet.truth(START + timedelta(days=30))


def test_steady_growth_volumes_fill_5_to_60_days_after_day_30(truth_day30: pl.DataFrame) -> None:
    steady = truth_day30.filter(scenario="steady_growth")
    days_left = (steady["full_at_bytes"] - (START + timedelta(days=30))).dt.total_hours() / 24
    assert days_left.null_count() == 0
    assert days_left.min() >= 3
    assert days_left.max() <= 62
    assert (steady["growth_bytes_per_day"] > 0).all()


def test_full_at_is_the_first_instant_usage_reaches_the_quota(
    fleet: Fleet, truth_day30: pl.DataFrame
) -> None:
    steady = truth_day30.filter(scenario="steady_growth").head(5)
    for row in steady.iter_rows(named=True):
        ids = [row["id"]]
        at_full = fleet.truth(row["full_at_bytes"], ids).row(0, named=True)
        just_before = fleet.truth(row["full_at_bytes"] - timedelta(seconds=1), ids).row(
            0, named=True
        )
        assert at_full["used_bytes"] >= row["max_size_bytes"]
        assert just_before["used_bytes"] < row["max_size_bytes"]


@pytest.mark.parametrize(
    ("scenario", "expectation"),
    [
        ("unlimited", "bytes never full"),
        ("already_full", "bytes full now"),
        ("inode_bound", "inodes fill first"),
        ("shrinking", "bytes shrink"),
        ("deleted", "deleted within the month"),
    ],
)
def test_scenario_truth(
    truth_day30: pl.DataFrame, fleet: Fleet, scenario: str, expectation: str
) -> None:
    at = START + timedelta(days=30)
    if scenario == "deleted":
        at_start = fleet.truth(START, fleet.scenario_ids()["deleted"])
        assert at_start.height == len(fleet.scenario_ids()["deleted"])
        assert (at_start["deleted_at"] < at).all()
        assert truth_day30.filter(scenario="deleted").height == 0
        return
    rows = truth_day30.filter(scenario=scenario)
    assert rows.height > 0
    if scenario == "unlimited":
        assert rows["max_size_bytes"].null_count() == rows.height
        assert rows["full_at_bytes"].null_count() == rows.height
    elif scenario == "already_full":
        assert (rows["full_at_bytes"] == at).all()
    elif scenario == "inode_bound":
        bytes_full = rows["full_at_bytes"].fill_null(datetime.max.replace(tzinfo=UTC))
        assert (rows["full_at_inodes"] < bytes_full).all()
    elif scenario == "shrinking":
        assert (rows["growth_bytes_per_day"] < 0).all()


def test_truth_endpoint_serves_the_python_truth(sim: SimulatorServer) -> None:
    at = START + timedelta(days=1)
    body = httpx.get(f"{sim.url}/_sim/truth", params={"at": "2025-01-07T00:00:00Z"}).json()
    frame = sim.fleet.truth(at)
    assert body["at"] == "2025-01-07T00:00:00Z"
    assert [v["id"] for v in body["volumes"]] == frame["id"].to_list()
    assert [v["used_bytes"] for v in body["volumes"]] == frame["used_bytes"].to_list()


# -- scale ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_renders_a_million_volumes() -> None:
    t0 = time.perf_counter()
    fleet = Fleet(1_000_000, seed=1, start=START)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    size = fleet.prerender(START)
    rendered = time.perf_counter() - t0
    print(f"\n1M volumes: build {built:.2f}s, render {rendered:.2f}s, {size / 1e6:.0f} MB")
    tail = fleet.render_json(START)[-2000:]
    assert tail.endswith(b"}]")
    assert json.loads(b"[" + tail[tail.index(b'{"id"') :])[-1]["id"].startswith("vol-")
