"""Normalization: an API body becomes typed lake rows, exactly, or is rejected/quarantined."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from fakes.payloads import volume, write_body
from pipelines.contract import LAKE_SCHEMA
from pipelines.normalize import SnapshotRejected, normalize

SNAP = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
OBSERVED = datetime(2026, 11, 27, 1, 5, 3, tzinfo=UTC)


def run(tmp_path, payload, **kw):
    return normalize(write_body(tmp_path, payload), snapshot_at=SNAP, observed_at=OBSERVED, **kw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-27T00:55:00Z", datetime(2026, 11, 27, 0, 55, tzinfo=UTC), id="zulu"),
        pytest.param(
            "2026-11-27T02:55:00+02:00",
            datetime(2026, 11, 27, 0, 55, tzinfo=UTC),
            id="positive-offset",
        ),
        pytest.param(
            "2026-11-26T19:25:00.5-05:30",
            datetime(2026, 11, 27, 0, 55, 0, 500000, tzinfo=UTC),
            id="negative-half-hour-offset-with-fraction",
        ),
        pytest.param(
            "2026-11-27T00:55:00.123Z",
            datetime(2026, 11, 27, 0, 55, 0, 123000, tzinfo=UTC),
            id="milliseconds",
        ),
        pytest.param(
            "2026-11-27T00:55:00.123456789Z",
            datetime(2026, 11, 27, 0, 55, 0, 123456, tzinfo=UTC),
            id="nanoseconds-truncated-to-microseconds",
        ),
    ],
)
def test_instants_are_converted_to_utc_exactly(tmp_path, text, expected):
    """Offsets and fractional seconds must land as the same instant, in UTC."""
    out = run(tmp_path, [volume(last_reconciled_at=text, created_at=text)])
    assert out.frame["last_reconciled_at"][0] == expected
    assert out.frame["created_at"][0] == expected


def test_frame_has_the_lake_schema_even_when_a_column_is_all_null(tmp_path):
    """An all-null column keeps its declared type: the schema is never inferred."""
    payload = [
        volume(i, max_size_bytes=None, max_mounts=None, last_reconciled_at=None) for i in range(3)
    ]
    out = run(tmp_path, payload)
    assert out.frame.schema == pl.Schema(LAKE_SCHEMA)
    assert out.frame["max_size_bytes"].null_count() == 3


def test_empty_fleet_is_an_empty_typed_frame(tmp_path):
    out = run(tmp_path, [])
    assert out.frame.height == 0
    assert out.frame.schema == pl.Schema(LAKE_SCHEMA)


def test_missing_host_id_is_null_and_present_host_id_is_kept(tmp_path):
    out = run(tmp_path, [volume(1), volume(2, host_id="host-a")])
    assert out.frame.sort("volume_id")["host_id"].to_list() == [None, "host-a"]
    assert out.quarantine.height == 0


def test_unknown_extra_fields_are_reported_not_fatal(tmp_path):
    out = run(tmp_path, [volume(1, region="eu"), volume(2)])
    assert out.frame.height == 2
    assert out.unknown_fields == {"region": 1}
    assert "region" not in out.frame.columns


def test_unknown_status_is_kept_verbatim_with_a_warning(tmp_path):
    out = run(tmp_path, [volume(1, status="migrating")])
    assert out.frame["status"].to_list() == ["migrating"]
    assert out.unknown_statuses == {"migrating": 1}
    assert out.warnings


def test_snapshot_and_observed_instants_are_stamped(tmp_path):
    out = run(tmp_path, [volume(1)])
    assert out.frame["snapshot_at"][0] == SNAP
    assert out.frame["observed_at"][0] == OBSERVED


def test_large_int64_values_survive(tmp_path):
    big = 2**62 + 12345
    out = run(tmp_path, [volume(1, used_bytes=big, max_size_bytes=big + 1)])
    assert out.frame["used_bytes"][0] == big
    assert out.frame["max_size_bytes"][0] == big + 1


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"volumes": []}, id="object-not-array"),
        pytest.param(b"<html>oops</html>", id="html"),
        pytest.param(b'[{"id": "a"', id="truncated-json"),
        pytest.param([1, 2], id="array-of-numbers"),
        pytest.param([volume(1), volume(1)], id="duplicate-ids"),
        pytest.param([volume(1, id="")], id="empty-id"),
        pytest.param([volume(1, id=None)], id="null-id"),
        pytest.param([volume(1, id=...)], id="missing-id"),
        pytest.param([volume(1, id=7)], id="numeric-id"),
    ],
)
def test_whole_snapshot_is_rejected_for_shape_and_identity_errors(tmp_path, payload):
    with pytest.raises(SnapshotRejected):
        run(tmp_path, payload)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"used_bytes": -1}, "used_bytes", id="negative-bytes"),
        pytest.param({"used_bytes": "7"}, "used_bytes", id="string-number"),
        pytest.param({"used_bytes": 1.5}, "used_bytes", id="float"),
        pytest.param({"used_bytes": 2**64}, "used_bytes", id="beyond-int64"),
        pytest.param({"mount_count": 2**31}, "mount_count", id="beyond-int32"),
        pytest.param({"mount_count": True}, "mount_count", id="boolean"),
        pytest.param({"created_at": "2026-11-27 00:55:00"}, "created_at", id="no-T-no-offset"),
        pytest.param({"created_at": "yesterday"}, "created_at", id="unparseable"),
        pytest.param(
            {"last_reconciled_at": "2026-13-40T00:00:00Z"},
            "last_reconciled_at",
            id="impossible-date",
        ),
        pytest.param({"status": None}, "status", id="null-status"),
        pytest.param({"name": ...}, "name", id="missing-name"),
        pytest.param({"max_size_bytes": ...}, "max_size_bytes", id="missing-nullable-quota"),
        pytest.param({"max_mounts": "4"}, "max_mounts", id="string-quota"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason_never_coerced(tmp_path, overrides, field):
    payload = [volume(i) for i in range(1, 200)] + [volume(999, **overrides)]
    out = run(tmp_path, payload)
    assert out.frame.height == 199
    assert "vol-000999" not in out.frame["volume_id"].to_list()
    assert out.quarantine["volume_id"].to_list() == ["vol-000999"]
    assert field in out.quarantine["reason"][0]
    assert out.quarantine["raw_json"][0].startswith("{")


def test_too_many_quarantined_rows_reject_the_snapshot(tmp_path):
    payload = [volume(1), volume(2, used_bytes=-5)]
    with pytest.raises(SnapshotRejected, match="failed validation"):
        run(tmp_path, payload, max_quarantine_share=0.1)


def test_fast_and_detailed_paths_agree_on_a_simulated_fleet(tmp_path):
    """The fast path (typed read + strict validation) gives exactly the detailed path's rows."""
    from datetime import timedelta

    from pipelines.contract import API_FIELDS
    from simulator import DEFAULT_START, Fleet

    at = DEFAULT_START + timedelta(days=20, hours=3)
    path = write_body(tmp_path, Fleet(3000, 4, DEFAULT_START).render_json(at, API_FIELDS))
    fast = normalize(path, snapshot_at=SNAP, observed_at=OBSERVED)
    detailed = normalize(path, snapshot_at=SNAP, observed_at=OBSERVED, fast=False)
    assert fast.frame.sort("volume_id").equals(detailed.frame.sort("volume_id"))
    assert fast.metadata == detailed.metadata


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"used_bytes": "7"}, id="string-number"),
        pytest.param({"used_bytes": 7.0}, id="float-integral"),
        pytest.param({"mount_count": True}, id="boolean"),
        pytest.param({"name": 12}, id="number-as-name"),
        pytest.param({"max_mounts": ...}, id="missing-nullable"),
        pytest.param({"zone": "a"}, id="unknown-key"),
        pytest.param({"created_at": "2026-11-27T00:55:00"}, id="no-offset"),
    ],
)
def test_strict_validation_refuses_what_the_typed_reader_would_coerce(tmp_path, overrides):
    from pipelines.strict import strictly_valid_count

    assert strictly_valid_count(write_body(tmp_path, [volume(1), volume(2)])) == 2
    bad = write_body(tmp_path, [volume(1), volume(2, **overrides)], "bad.json")
    if "created_at" in overrides:  # a string to msgspec; the instant check is DuckDB's
        from pipelines.strict import fast_frame

        assert fast_frame(bad, snapshot_at=SNAP, observed_at=OBSERVED) is None
    else:
        assert strictly_valid_count(bad) is None


def test_strict_validation_survives_object_separators_inside_strings(tmp_path):
    """A name containing '},{' may split a chunk mid-string: never a wrong answer."""
    from pipelines.strict import strictly_valid_count

    payload = [volume(i, name="a},{b" if i % 2 else f"v{i}") for i in range(1, 50)]
    path = write_body(tmp_path, payload)
    assert strictly_valid_count(path, chunk_bytes=64) in (None, 49)
    out = run(tmp_path, payload)
    assert out.frame.height == 49 and out.quarantine.height == 0
