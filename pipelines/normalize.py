"""Raw JSON body → validated, typed polars frame in the lake schema, plus quarantined rows.

Parsing runs in DuckDB's JSON reader (the fastest JSON-array-to-columns reader we measured:
~1 s per 1M volumes against ~3 s for orjson + polars, see bench/ingest.py); the result crosses into polars through Arrow without a copy and is cast to the
lake's explicit schema there. Each object is parsed once: fields are extracted by path, so a
missing key (SQL NULL) is told apart from a JSON `null`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines import settings
from pipelines.contract import (
    API_FIELDS,
    INT32_MAX,
    OPTIONAL,
    REQUIRED_NON_NULL,
    REQUIRED_NULLABLE,
    RFC3339_PATTERN,
    STATUSES,
    to_lake,
)
from pipelines.sources import DEFAULT_SOURCE
from pipelines.strict import fast_frame

_INT64_FIELDS = ("used_bytes", "inode_count", "max_size_bytes", "max_file_count")
_INT32_FIELDS = ("mount_count", "max_mounts")
_STRING_FIELDS = ("id", "name", "status", "host_id")


class SnapshotRejected(ValueError):
    """The snapshot as a whole breaks the contract; nothing from it may be published."""


@dataclass
class Normalized:
    frame: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    status_counts: dict[str, int]
    unknown_statuses: dict[str, int]
    missing_fields: dict[str, int]
    unknown_fields: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    #: "fast" (typed read proven exact by strict validation) or "detailed" (row by row)
    validation_path: str = "detailed"

    @property
    def metadata(self) -> dict[str, object]:
        return {
            "rows_in": self.rows_in,
            "rows_published": self.frame.height,
            "rows_quarantined": self.quarantine.height,
            "counts_by_status": self.status_counts,
            "unknown_statuses": self.unknown_statuses,
            "fields_missing": self.missing_fields,
            "fields_unknown": self.unknown_fields,
        }


_INT_FIELDS = (*_INT64_FIELDS, *_INT32_FIELDS)


def _field_checks(name: str) -> tuple[str, str]:
    """(value expression, SQL condition that makes the row bad) for one API field.

    `j_<name>` is the field as JSON text re-serialized by DuckDB (SQL NULL when the key is
    missing, 'null' for a JSON null); `t_<name>` is its decoded string value when it is a JSON
    string, `n_<name>` its integer value when it is a JSON integer (see `_DECODED`). Type tests
    read the first characters of that text instead of calling json_type() (which would parse
    each value again): a JSON integer re-serializes as digits only, a real always with '.' or
    an exponent, a string with a leading quote.
    """
    raw = f'"j_{name}"'
    present_null = f"{raw} = 'null'"
    if name in _STRING_FIELDS:
        value = f'"t_{name}"'
        bad = f"{value} is null"
    elif name in _INT_FIELDS:
        upper = INT32_MAX if name in _INT32_FIELDS else 2**63 - 1
        number = f'"n_{name}"'
        bad = f"{number} is null or {number} < 0 or {number} > {upper}"
        value = f"try_cast({number} as bigint)"
    else:  # timestamps
        text = f'"t_{name}"'
        value = (
            f"case when regexp_full_match({text}, '{RFC3339_PATTERN}') "
            f"then try_cast({text} as timestamptz) end"
        )
        bad = f"({value}) is null"
    if name in OPTIONAL:
        bad = f"({raw} is not null and not {present_null} and ({bad}))"
    elif name in REQUIRED_NULLABLE:
        # The key must be present; JSON null means unlimited / never reconciled.
        bad = f"({raw} is null or (not {present_null} and ({bad})))"
    else:
        bad = f"({raw} is null or {present_null} or ({bad}))"
    return value, bad


def _decoded(name: str) -> str:
    raw = f'"j_{name}"'
    if name in _INT_FIELDS:
        return (
            f"case when regexp_full_match({raw}, '-?[0-9]+') "
            f'then try_cast({raw} as hugeint) end as "n_{name}"'
        )
    # Only strings with an escape need a JSON decode; the rest is the text between the quotes.
    return (
        f"case when starts_with({raw}, '\"') then "
        f"case when contains({raw}, '\\') then {raw}::json ->> '$' else {raw}[2:-2] end "
        f'end as "t_{name}"'
    )


def _build_query() -> str:
    """One pass over the body: each element is read once and its fields extracted once.

    The key census (unknown and missing fields) needs each object's keys, which would mean
    parsing every object again; it is only done for objects that could hold a key we did not
    extract. An object's byte length equals the length rebuilt from its extracted fields
    exactly when it holds no other key, unless the re-serialization shortened it: only
    `\\u`/`\\/` escapes and `-0` (re-serialized `0`, at most 1 byte per zero integer) do,
    and any other key adds at least 5 bytes (`,"":0`). Invalid rows always get the census.
    """
    paths = ", ".join(f"'$.\"{f}\"'" for f in API_FIELDS)
    extracted = ", ".join(f'x[{i + 1}]::varchar as "j_{f}"' for i, f in enumerate(API_FIELDS))
    decoded = ", ".join(_decoded(f) for f in API_FIELDS)
    values, reasons = [], []
    for f in API_FIELDS:
        value, bad = _field_checks(f)
        values.append(f'{value} as "{f}"')
        reasons.append(f"case when {bad} then '{f}' end")
    # `"key":` plus the value, and one comma per field: strlen(j) + len(key) + 4
    rebuilt = " + ".join(f'coalesce(strlen("j_{f}") + {len(f) + 4}, 0)' for f in API_FIELDS)
    zeros = " + ".join(f"(\"j_{f}\" = '0')::int" for f in _INT_FIELDS)
    return f"""
        with objects as (
            select row_number() over () as _row, json as _obj,
                   json_extract(json, [{paths}]) as x
            from read_json_objects($path, format = 'array', maximum_object_size = 16777216)
        ),
        fields as (select _row, _obj, {extracted} from objects),
        decoded as (select *, {decoded} from fields)
        select _row, starts_with(_obj, '{{') as _is_object, {", ".join(values)},
               concat_ws(',', {", ".join(reasons)}) as _bad_fields,
               case when _bad_fields <> '' then _obj end as _raw,
               {" + ".join(f'("j_{f}" is not null)::int * {1 << i}' for i, f in enumerate(API_FIELDS))}
                   as _present,
               case
                   when _bad_fields <> '' or not _is_object
                       or contains(_obj, '\\u') or contains(_obj, '\\/')
                       or strlen(_obj) - greatest({rebuilt} + 1, 2) + {zeros} >= 5
                   then json_keys(_obj)
               end as _keys
        from decoded
    """


_QUERY = _build_query()


def _key_census(df: pl.DataFrame) -> dict[str, int]:
    """Objects holding each key: extracted fields for plain objects, json_keys() for the rest."""
    present = df.filter(pl.col("_keys").is_null())["_present"]
    counts = {f: int(((present & (1 << i)) != 0).sum()) for i, f in enumerate(API_FIELDS)}
    listed = df["_keys"].drop_nulls().explode().drop_nulls().value_counts()
    for key, n in listed.iter_rows():
        counts[key] = counts.get(key, 0) + n
    return {k: v for k, v in counts.items() if v}


def normalize(
    body: Path,
    *,
    snapshot_at: datetime,
    observed_at: datetime,
    max_quarantine_share: float = settings.MAX_QUARANTINE_SHARE,
    fast: bool = True,
    source: str = DEFAULT_SOURCE,
) -> Normalized:
    """Validate a `GET /v1/volumes` body and return it in the lake schema.

    A body that is exactly valid takes the fast path (`pipelines.strict`); anything else, or
    `fast=False`, takes the detailed path below, which says row by row what is wrong.

    Whole-snapshot failures (raise SnapshotRejected): not a JSON array, a non-object element,
    a missing/empty/duplicate id, or more than `max_quarantine_share` of rows quarantined.
    Row failures (quarantined with a reason): missing required fields, wrong types, negative
    or out-of-range numbers, unparseable timestamps. Kept with a warning: unknown extra fields,
    unknown `status` values, a missing `host_id`.
    """
    clean = (
        fast_frame(body, snapshot_at=snapshot_at, observed_at=observed_at, source=source)
        if fast
        else None
    )
    if clean is not None:
        _reject_duplicate_ids(clean["volume_id"])
        fast_result = _normalized(clean, _EMPTY_QUARANTINE, rows_in=clean.height, keys={})
        fast_result.validation_path = "fast"
        return fast_result
    con = duckdb.connect(config={"threads": 2})
    try:
        con.execute("set TimeZone = 'UTC'")
        try:
            rel = con.sql(_QUERY, params={"path": str(body)}).to_arrow_table()
        except duckdb.Error as exc:
            raise SnapshotRejected(
                f"body is not a JSON array of objects: {_first_line(exc)}"
            ) from None
    finally:
        con.close()
    df = pl.from_arrow(rel)
    assert isinstance(df, pl.DataFrame)
    rows_in = df.height
    if rows_in and not df["_is_object"].all():
        bad = int((~df["_is_object"]).sum())
        raise SnapshotRejected(f"{bad} array element(s) are not JSON objects")
    ids = df["id"]
    if ids.null_count() or (ids.str.len_chars() == 0).any():
        raise SnapshotRejected("a volume has a missing, null, non-string or empty id")
    _reject_duplicate_ids(ids)
    bad_rows = df["_bad_fields"] != ""
    quarantine = df.filter(bad_rows).select(
        pl.col("_row").alias("row_number"),
        pl.col("id").alias("volume_id"),
        ("invalid or missing: " + pl.col("_bad_fields")).alias("reason"),
        pl.col("_raw").alias("raw_json"),
    )
    if rows_in and quarantine.height / rows_in > max_quarantine_share:
        raise SnapshotRejected(
            f"{quarantine.height} of {rows_in} rows failed validation "
            f"(more than {max_quarantine_share:.1%}); first: {quarantine['reason'][0]}"
        )
    good = df.filter(~bad_rows)
    frame = to_lake(good, source=source, snapshot_at=snapshot_at, observed_at=observed_at)
    return _normalized(frame, quarantine, rows_in=rows_in, keys=_key_census(df))


def _reject_duplicate_ids(ids: pl.Series) -> None:
    # Distinct 64-bit hashes prove distinct ids (~0.05 s of CPU per 1M ids, against ~0.4 s for
    # is_duplicated); only a real duplicate, or a hash collision, takes the exact test below.
    if ids.hash().n_unique() == ids.len():
        return
    dupes = ids.is_duplicated()
    if dupes.any():
        raise SnapshotRejected(
            f"{ids.filter(dupes).n_unique()} id(s) appear more than once, e.g. "
            f"{ids.filter(dupes)[0]!r}"
        )


_EMPTY_QUARANTINE = pl.DataFrame(
    schema={
        "row_number": pl.Int64,
        "volume_id": pl.String,
        "reason": pl.String,
        "raw_json": pl.String,
    }
)


def _normalized(
    frame: pl.DataFrame, quarantine: pl.DataFrame, *, rows_in: int, keys: dict[str, int]
) -> Normalized:
    """Counts and warnings for a validated frame. `keys` is the key census of the detailed path
    (empty from the fast path, which proved every object has exactly the documented keys)."""
    status_counts = dict(frame.group_by("status").len().sort("status").iter_rows())
    unknown_statuses = {k: v for k, v in status_counts.items() if k not in STATUSES}
    missing = {
        f: rows_in - keys.get(f, 0)
        for f in (*REQUIRED_NON_NULL, *REQUIRED_NULLABLE)
        if keys and rows_in - keys.get(f, 0)
    }
    unknown = {k: v for k, v in keys.items() if k not in API_FIELDS}
    warnings = []
    if unknown:
        warnings.append(f"unknown fields kept in raw only: {sorted(unknown)}")
    if unknown_statuses:
        warnings.append(f"unknown status values kept verbatim: {sorted(unknown_statuses)}")
    return Normalized(
        frame=frame,
        quarantine=quarantine,
        rows_in=rows_in,
        status_counts=status_counts,
        unknown_statuses=unknown_statuses,
        missing_fields=missing,
        unknown_fields=unknown,
        warnings=warnings,
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300]
