"""Property tests: payloads generated from the OpenAPI contract normalize exactly; mutated
ones are rejected or quarantined, never silently coerced."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.normalize import SnapshotRejected, normalize

CONTRACT = Path(__file__).resolve().parents[1] / "api" / "volumes.openapi.yaml"
SCHEMA: dict[str, Any] = yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]["Volume"]
SNAPSHOT_AT = datetime(2026, 11, 27, 1, tzinfo=UTC)
BOUNDED = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


@st.composite
def rfc3339(draw: st.DrawFn) -> tuple[str, datetime]:
    """An RFC 3339 string and the instant it denotes (offsets, fractions of 0-6 digits)."""
    instant = draw(instants)
    digits = draw(st.integers(0, 6))
    instant = instant.replace(
        microsecond=instant.microsecond // 10 ** (6 - digits) * 10 ** (6 - digits)
    )
    local = instant.astimezone(timezone(timedelta(minutes=draw(offsets))))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    off = local.utcoffset() or timedelta()
    if off == timedelta() and draw(st.booleans()):
        text += "Z"
    else:
        minutes = int(off.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text, instant


def _value(name: str, spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    nullable = "null" in types
    kind = next(t for t in types if t != "null")
    if kind == "integer":
        top = 2**31 - 1 if spec.get("format") == "int32" else 2**63 - 1
        base: st.SearchStrategy[Any] = st.integers(0, top)
    elif spec.get("format") == "date-time":
        base = rfc3339()
    elif "enum" in spec:
        base = st.sampled_from(spec["enum"])
    else:
        base = st.text(min_size=1 if name == "id" else 0, max_size=40)
    return st.one_of(st.none(), base) if nullable else base


FIELDS = {name: _value(name, spec) for name, spec in SCHEMA["properties"].items()}
REQUIRED = set(SCHEMA["required"])


@st.composite
def volume(draw: st.DrawFn) -> dict[str, Any]:
    """A contract-valid volume; date-time fields carry (text, instant) until rendered."""
    out = {}
    for name, strategy in FIELDS.items():
        if name in REQUIRED or draw(st.booleans()):
            out[name] = draw(strategy)
    return out


fleets = st.lists(volume(), min_size=1, max_size=20, unique_by=lambda v: v["id"])


def _render(fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v[0] if isinstance(v, tuple) else v for k, v in row.items()} for row in fleet]


def _normalize(tmp_path: Path, payload: Any, share: float = 1.0):
    path = tmp_path / "body.json"
    path.write_text(json.dumps(payload))
    return normalize(
        path, snapshot_at=SNAPSHOT_AT, observed_at=SNAPSHOT_AT, max_quarantine_share=share
    )


@BOUNDED
@given(fleet=fleets)
def test_valid_payloads_normalize_exactly(tmp_path, fleet):
    result = _normalize(tmp_path, _render(fleet), share=0.0)
    assert result.quarantine.height == 0
    rows = {r["volume_id"]: r for r in result.frame.iter_rows(named=True)}
    assert sorted(rows) == sorted(v["id"] for v in fleet)
    for v in fleet:
        row = rows[v["id"]]
        for name, value in v.items():
            column = "volume_id" if name == "id" else name
            expected = value[1] if isinstance(value, tuple) else value
            assert row[column] == expected, (name, value, row[column])
        if "host_id" not in v:
            assert row["host_id"] is None


MUTATIONS = {
    "negative": lambda v, f: -1 - abs(v) if isinstance(v, int) else -1,
    "string-for-number": lambda v, f: str(v),
    "float-for-number": lambda v, f: 1.5,
    "bool-for-number": lambda v, f: True,
    "bad-timestamp": lambda v, f: "2025-02-30T00:00:00Z",
    "no-offset": lambda v, f: "2025-01-01T00:00:00",
    "words": lambda v, f: "yesterday",
    "null": lambda v, f: None,
    "object": lambda v, f: {"value": 1},
    "missing": lambda v, f: ...,
}
NUMBERS = [
    "used_bytes",
    "inode_count",
    "mount_count",
    "max_size_bytes",
    "max_file_count",
    "max_mounts",
]
TIMES = ["created_at", "last_reconciled_at"]


@BOUNDED
@given(
    fleet=fleets,
    field=st.sampled_from([*NUMBERS, *TIMES, "name", "status"]),
    mutation=st.sampled_from(sorted(MUTATIONS)),
    data=st.data(),
)
def test_mutated_payloads_are_rejected_or_quarantined_never_coerced(
    tmp_path, fleet, field, mutation, data
):
    rows = _render(fleet)
    victim = data.draw(st.integers(0, len(rows) - 1))
    original = rows[victim].get(field)
    changed = MUTATIONS[mutation](original, field)
    nullable = "null" in (SCHEMA["properties"][field]["type"])
    if changed is ...:
        rows[victim].pop(field, None)
    else:
        rows[victim][field] = changed
    harmless = (type(changed) is type(original) and changed == original) or (
        changed is None and nullable
    )
    if field in ("name", "status") and isinstance(changed, str):
        harmless = True  # any string is a valid name; unknown statuses are kept verbatim
    if harmless:
        return
    try:
        result = _normalize(tmp_path, rows)
    except SnapshotRejected:
        return
    assert rows[victim]["id"] in result.quarantine["volume_id"].to_list(), (
        field,
        mutation,
        changed,
    )
    assert rows[victim]["id"] not in result.frame["volume_id"].to_list()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"volumes": []}, id="object-not-array"),
        pytest.param([1, 2], id="array-of-numbers"),
        pytest.param([{"id": "a"}, {"id": "a"}], id="duplicate-ids"),
        pytest.param([{"name": "no id"}], id="missing-id"),
        pytest.param([{"id": ""}], id="empty-id"),
    ],
)
def test_whole_snapshot_failures_are_rejected(tmp_path, payload):
    with pytest.raises(SnapshotRejected):
        _normalize(tmp_path, payload)
