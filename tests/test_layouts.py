"""Any whitespace layout of the same JSON array lands the same lake rows, by the fast path.

Providers write the volume list compact (`[{"a":1},{"a":2}]`), with Python's `", "` separators,
or pretty-printed (their docs show `[\\n  {\\n    "id": …`). The simulator serves each layout
over real HTTP; the real ingest must publish identical lake frames for all of them, prove each
exactly (the fast path), and keep memory bounded by its chunk size whatever the layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import msgspec
import polars as pl
import pytest

from fakes.payloads import volume, write_body
from pipelines import lake, strict
from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.contract import API_FIELDS, LAKE_SCHEMA
from pipelines.lake import DataDir
from pipelines.normalize import normalize
from pipelines.partitions import key_for_instant, snapshot_partitions
from pipelines.resources import LakeStore, VolumeApi
from simulator import DEFAULT_START, SimulatorServer
from simulator.render import Layout

TOKEN = "layouts-token"
PARTITIONS = snapshot_partitions(60)
ASSETS = build_ingestion_assets(PARTITIONS)
AT = DEFAULT_START + timedelta(days=4, hours=2, minutes=5)

LAYOUTS = [
    pytest.param(Layout("compact"), id="compact"),
    pytest.param(Layout("spaced"), id="spaced"),
    pytest.param(Layout("pretty", indent=2), id="pretty-indent-2"),
    pytest.param(Layout("pretty", indent=4), id="pretty-indent-4"),
    pytest.param(Layout("pretty", indent=2, newline="\r\n"), id="pretty-crlf"),
    pytest.param(Layout("compact", padding=" \r\n\t"), id="compact-padded"),
    pytest.param(Layout("spaced", padding="\n"), id="spaced-padded"),
    pytest.param(Layout("pretty", indent=4, newline="\r\n", padding="\r\n  "), id="pretty-all"),
]
#: `json.dumps` spellings of the same layouts, for bodies the simulator does not generate.
DUMPS: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":")},
    "spaced": {},
    "pretty-2": {"indent": 2},
    "pretty-4": {"indent": 4},
    "tabs": {"indent": "\t"},
}


def materialize(url: str, data_dir: Path) -> dg.ExecuteInJobResult:
    return dg.materialize(
        ASSETS,
        partition_key=key_for_instant(PARTITIONS, AT),
        resources={
            "volume_api": VolumeApi(base_url=url, token=TOKEN, max_attempts=1),
            "lake": LakeStore(data_dir=str(data_dir)),
        },
        raise_on_error=False,
    )


def ingest(sim: SimulatorServer, layout: Layout, data_dir: Path) -> dict[str, Any]:
    """Switch the simulator's layout over HTTP, run the real ingestion assets, and return what
    landed: the lake frame, the raw body as received, and the recorded validation path."""
    switched = httpx.post(f"{sim.url}/_sim/layout", json=layout.as_json())
    assert switched.status_code == 200 and switched.json() == layout.as_json()
    result = materialize(sim.url, data_dir)
    assert result.success
    meta = result.asset_materializations_for_node("volume_snapshots")[0].metadata
    data = DataDir.at(data_dir)
    snapshot_at = AT.replace(minute=0)
    raw = data_dir / "raw.json"
    lake.decompress_zstd(data.raw_body(snapshot_at), raw)
    return {
        "frame": pl.read_parquet(data.lake_file(snapshot_at)),
        "raw": raw.read_bytes(),
        "path": meta["validation_path"].value,
        "sidecar": lake.read_sidecar(data.raw_sidecar(snapshot_at))["validation"],
    }


def start_simulator(volumes: int) -> SimulatorServer:
    sim = SimulatorServer(volumes=volumes, seed=5, token=TOKEN).start()
    sim.set_clock(AT)
    return sim


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = start_simulator(400)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def compact(sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return ingest(sim, Layout("compact"), tmp_path_factory.mktemp("compact"))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_lands_the_same_lake_frame_by_the_fast_path(
    sim: SimulatorServer, compact: dict[str, Any], layout: Layout, tmp_path: Path
) -> None:
    landed = ingest(sim, layout, tmp_path)
    # the layout really was served (and landed raw, byte for byte) ...
    assert landed["raw"] == sim.fleet.render_json(AT, API_FIELDS, layout)
    assert (landed["raw"] == compact["raw"]) == (layout == Layout("compact"))
    # ... and made no difference to the lake, nor to how it was proven
    assert landed["frame"].schema == pl.Schema(LAKE_SCHEMA)
    assert landed["frame"].height > 300
    assert landed["frame"].equals(compact["frame"])
    assert landed["path"] == landed["sidecar"]["validation_path"] == "fast"


@pytest.mark.parametrize("volumes", [0, 1], ids=["empty-fleet", "one-volume"])
@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(Layout("compact"), id="compact"),
        pytest.param(Layout("spaced", padding=" "), id="spaced"),
        pytest.param(Layout("pretty", indent=4, newline="\r\n", padding="\n"), id="pretty"),
    ],
)
def test_an_empty_or_single_volume_fleet_takes_the_fast_path(
    layout: Layout, volumes: int, tmp_path: Path
) -> None:
    sim = start_simulator(volumes)
    try:
        landed = ingest(sim, layout, tmp_path)
    finally:
        sim.stop()
    assert landed["raw"].count(b'"id"') == volumes
    assert landed["raw"] == sim.fleet.render_json(AT, API_FIELDS, layout)
    assert landed["frame"].height == volumes
    assert landed["frame"].schema == pl.Schema(LAKE_SCHEMA)
    assert landed["path"] == "fast"


# -- the splitter on its own: small chunks, so every body is cut many times -------------------


def payload(n: int, **overrides: Any) -> list[dict[str, Any]]:
    return [volume(i, **overrides) for i in range(1, n + 1)]


def spellings(vols: list[dict[str, Any]]) -> dict[str, str]:
    texts = {name: json.dumps(vols, **kw) for name, kw in DUMPS.items()}
    texts["pretty-crlf"] = texts["pretty-2"].replace("\n", "\r\n")
    texts["padded"] = " \r\n\t" + texts["pretty-4"] + "\n \n"
    return texts


@pytest.mark.parametrize("chunk_bytes", [1 << 10, 1 << 12, strict.CHUNK_BYTES])
def test_every_spelling_validates_in_chunks(tmp_path: Path, chunk_bytes: int) -> None:
    for name, text in spellings(payload(120)).items():
        path = write_body(tmp_path, text.encode(), f"{name}.json")
        assert strict.strictly_valid_count(path, chunk_bytes=chunk_bytes) == 120, name


@pytest.mark.parametrize("text", ["[]", "[ ]", "[\n]", "[\r\n]", " \n[]\n ", "\t[\t]\t"])
def test_an_empty_array_in_any_spelling_is_valid_and_empty(tmp_path: Path, text: str) -> None:
    path = write_body(tmp_path, text.encode())
    assert strict.strictly_valid_count(path) == 0
    out = normalize(path, snapshot_at=AT, observed_at=AT)
    assert (out.frame.height, out.validation_path) == (0, "fast")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-file"),
        pytest.param(" \n", id="whitespace-only"),
        pytest.param("[", id="unclosed"),
        pytest.param("[] []", id="two-arrays"),
        pytest.param("[]x", id="trailing-garbage"),
        pytest.param("\f[]", id="form-feed-is-not-json-whitespace"),
    ],
)
def test_what_is_not_one_json_array_is_never_proven(tmp_path: Path, text: str) -> None:
    assert strict.strictly_valid_count(write_body(tmp_path, text.encode())) is None


def test_a_form_feed_between_objects_is_no_split_point(tmp_path: Path) -> None:
    """`\\f` is not JSON whitespace: a body with one between elements is invalid, whatever the
    chunking (a `\\s` regex would have split there and framed two valid halves)."""
    text = json.dumps(payload(40)).replace("}, {", "}\f, {", 1)
    path = write_body(tmp_path, text.encode())
    for chunk_bytes in (256, 1 << 10, 1 << 20):
        assert strict.strictly_valid_count(path, chunk_bytes=chunk_bytes) is None


@pytest.mark.parametrize("spelling", ["compact", "spaced", "pretty-2", "pretty-4"])
def test_object_separators_inside_strings_never_give_a_wrong_answer(
    tmp_path: Path, spelling: str
) -> None:
    """A name holding `}, {` (in the body's own spelling) may be taken for a split point: the
    chunk before it then ends inside a string, which is invalid JSON, so the fast path gives up
    (None) or counts right; normalize still returns exactly the rows."""
    tricky = ["a},{b", "a}, {b", "a},\n  {b", 'x"}, {"y', "}\r\n,\r\n{"]
    vols = [volume(i, name=tricky[i % len(tricky)] if i % 3 else f"v{i}") for i in range(1, 60)]
    path = write_body(tmp_path, json.dumps(vols, **DUMPS[spelling]).encode())
    for chunk_bytes in range(300, 3000, 97):
        assert strict.strictly_valid_count(path, chunk_bytes=chunk_bytes) in (None, 59)
    fast = normalize(path, snapshot_at=AT, observed_at=AT)
    detailed = normalize(path, snapshot_at=AT, observed_at=AT, fast=False)
    assert fast.frame.equals(detailed.frame)
    assert fast.frame["name"].to_list() == [v["name"] for v in vols]


@pytest.mark.parametrize("spelling", ["compact", "pretty-4"])
def test_memory_is_bounded_by_the_chunk_size_in_every_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """No decode sees more than one chunk of the body, so the objects alive at once are bounded
    by the chunk size (the old splitter, keyed to `},{`, decoded a pretty body whole)."""
    path = write_body(tmp_path, json.dumps(payload(500), **DUMPS[spelling]).encode())
    seen: list[int] = []
    real = strict._DECODER

    class Recording:
        def decode(self, buf: memoryview) -> list[Any]:
            seen.append(len(buf))
            return real.decode(buf)

    monkeypatch.setattr(strict, "_DECODER", Recording())
    chunk_bytes = 8 << 10
    assert strict.strictly_valid_count(path, chunk_bytes=chunk_bytes) == 500
    assert len(seen) >= path.stat().st_size // chunk_bytes
    assert max(seen) <= chunk_bytes


def test_an_object_longer_than_a_chunk_falls_back_to_the_detailed_path(tmp_path: Path) -> None:
    path = write_body(tmp_path, payload(3, name="n" * 5000))
    assert strict.strictly_valid_count(path, chunk_bytes=4096) is None
    assert strict.strictly_valid_count(path) == 3


def test_strict_validation_still_refuses_coercions_in_pretty_bodies(tmp_path: Path) -> None:
    vols = payload(30)
    vols[17]["used_bytes"] = "7"
    path = write_body(tmp_path, json.dumps(vols, indent=2).encode())
    assert strict.strictly_valid_count(path, chunk_bytes=1 << 10) is None
    out = normalize(path, snapshot_at=AT, observed_at=AT, max_quarantine_share=0.5)
    assert out.validation_path == "detailed"
    assert out.quarantine["volume_id"].to_list() == ["vol-000018"]


# -- the simulator serves each layout ------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_simulator_bodies_are_json_dumps_of_the_same_value(
    sim: SimulatorServer, layout: Layout
) -> None:
    """Byte for byte what `json.dumps` writes for that layout, so the contract holds alike."""
    sim.set_layout(layout)
    try:
        got = httpx.get(f"{sim.url}/v1/volumes", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        sim.set_layout(Layout())
    value = json.loads(got.content)
    kw: dict[str, Any] = {
        "compact": DUMPS["compact"],
        "spaced": {},
        "pretty": {"indent": layout.indent},
    }[layout.style]
    text = json.dumps(value, ensure_ascii=False, **kw).replace("\n", layout.newline)
    assert got.content.decode() == layout.padding + text + layout.padding
    assert value == json.loads(sim.fleet.render_json(AT))
    assert msgspec.json.decode(got.content) == value


def test_layout_control_endpoint(sim: SimulatorServer) -> None:
    url = f"{sim.url}/_sim/layout"
    sim.set_layout(Layout())
    assert httpx.get(url).json() == Layout().as_json()
    for bad in ({"style": "yaml"}, {"indent": -1}, {"newline": "\r"}, {"padding": "x"}, {"x": 1}):
        assert httpx.post(url, json=bad).status_code == 400, bad
    assert httpx.post(url, json={"style": "spaced"}).json()["style"] == "spaced"
    assert httpx.get(f"{sim.url}/_sim/info").json()["layout"]["style"] == "spaced"
    httpx.post(url, json={"style": "compact"})


def test_simulate_serves_the_layout_named_on_its_command_line() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", "--volumes", "3", "--layout", "pretty"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[2]
        got = httpx.get(f"{url}/v1/volumes", headers={"Authorization": "Bearer volcap-dev-token"})
        assert got.text.startswith('[\n  {\n    "id": ')
        assert httpx.get(f"{url}/_sim/layout").json()["style"] == "pretty"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_simulate_refuses_an_unknown_layout_in_one_line() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--layout", "yaml"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--layout" in done.stderr
