"""The `/v1/volumes` JSON body, built column-wise with polars string expressions."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

#: The contract's fields, in its order (and the order objects are written in).
API_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "host_id",
    "used_bytes",
    "inode_count",
    "mount_count",
    "max_size_bytes",
    "max_file_count",
    "max_mounts",
    "last_reconciled_at",
    "status",
)
DEFAULT_FIELDS: tuple[str, ...] = tuple(f for f in API_FIELDS if f != "host_id")
_MASK = re.compile(r"^({0})(,({0}))*$".format("|".join(API_FIELDS)))

NONE_US = np.iinfo(np.int64).max
_STATUSES = pl.Series(["available", "attached", "degraded", "error"])
#: Per style: (fraction digits, numeric offset instead of `Z`); see fleet._STYLES.
_FRACTION_DIGITS = (0, 3, 6, 0, 3, 1)
_USES_OFFSET = (False, False, False, True, True, True)


class FieldMaskError(ValueError):
    """The `fields` query parameter is not a comma-separated list of documented fields."""


def parse_fields(mask: str | None) -> tuple[str, ...] | None:
    """The contract's `fields` parameter to a field tuple in contract order (None = no mask)."""
    if mask is None:
        return None
    if not _MASK.match(mask):
        raise FieldMaskError(f"invalid field mask: {mask!r}")
    return normalize_fields(mask.split(","))


def normalize_fields(fields: Sequence[str] | None) -> tuple[str, ...] | None:
    if fields is None:
        return None
    unknown = set(fields) - set(API_FIELDS)
    if unknown:
        raise FieldMaskError(f"unknown fields: {sorted(unknown)}")
    return tuple(f for f in API_FIELDS if f in fields)


def json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _offset_text(minutes: pl.Expr) -> pl.Expr:
    sign = pl.when(minutes < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    absolute = minutes.abs()
    return pl.concat_str(
        [
            sign,
            (absolute // 60).cast(pl.String).str.zfill(2),
            pl.lit(":"),
            (absolute % 60).cast(pl.String).str.zfill(2),
        ]
    )


def instant_text(us: pl.Expr, style: pl.Expr, offset_min: pl.Expr) -> pl.Expr:
    """RFC 3339 text for exact instants, in a mix of styles: `Z` or a numeric offset, and 0, 1, 3
    or 6 fraction digits. Each instant must be a multiple of its style's precision."""
    off = pl.when(style >= 3).then(offset_min.cast(pl.Int64)).otherwise(0)
    frac = us % 1_000_000
    fraction = (
        pl.when(style.is_in([1, 4]))
        .then(pl.lit(".") + (frac // 1000).cast(pl.String).str.zfill(3))
        .when(style == 2)
        .then(pl.lit(".") + frac.cast(pl.String).str.zfill(6))
        .when(style == 5)
        .then(pl.lit(".") + (frac // 100_000).cast(pl.String))
        .otherwise(pl.lit(""))
    )
    local = (us + off * 60_000_000).cast(pl.Datetime("us"))
    suffix = pl.when(style >= 3).then(_offset_text(off)).otherwise(pl.lit("Z"))
    return pl.concat_str([local.dt.strftime("%Y-%m-%dT%H:%M:%S"), fraction, suffix])


def format_instants(us: np.ndarray, style: np.ndarray, offset_min: np.ndarray) -> pl.Series:
    """`instant_text` over arrays."""
    df = pl.DataFrame({"us": us, "style": style, "off": offset_min})
    return df.select(
        instant_text(pl.col("us"), pl.col("style"), pl.col("off")).alias("text")
    ).to_series()


@dataclass(frozen=True)
class Body:
    """A JSON array body held as a few buffers (written in order), without copying the rows."""

    chunks: tuple[memoryview, ...]
    count: int

    def __len__(self) -> int:
        return sum(c.nbytes for c in self.chunks)

    def tobytes(self) -> bytes:
        return b"".join(self.chunks)


def render(
    static: pl.DataFrame, state: dict[str, np.ndarray], fields: tuple[str, ...] | None
) -> Body:
    """Serialize rows to `[{...},{...}]`. host_id appears only when asked for, and then only on
    the volumes that have one; null quotas and timestamps are written as `null`."""
    wanted = fields if fields is not None else DEFAULT_FIELDS
    n = static.height
    if n == 0 or not wanted:
        return Body((memoryview(b"[" + b",".join([b"{}"] * n) + b"]"),), n)

    rec = state["rec_us"]
    never = rec == NONE_US
    frame = static.with_columns(
        used_bytes=pl.Series(state["used_bytes"]),
        inode_count=pl.Series(state["inode_count"]),
        mount_count=pl.Series(state["mount_count"]),
        max_size_bytes=pl.Series(state["max_size_bytes"], nan_to_null=True).cast(pl.Int64),
        max_file_count=pl.Series(state["max_file_count"], nan_to_null=True).cast(pl.Int64),
        max_mounts=pl.Series(state["max_mounts"]).replace(-1, None),
        rec_us=pl.Series(np.where(never, 0, rec)),
        rec_never=pl.Series(never),
        rec_style=pl.Series(state["rec_style"]),
        rec_offset=pl.Series(state["rec_offset"]),
        status=pl.Series(state["status"]),
    )

    def quoted(name: str, text: pl.Expr) -> pl.Expr:
        return pl.concat_str([pl.lit(f'"{name}":"'), text, pl.lit('"')])

    def number(name: str) -> pl.Expr:
        return pl.lit(f'"{name}":') + pl.col(name).cast(pl.String).fill_null("null")

    rec_text = instant_text(pl.col("rec_us"), pl.col("rec_style"), pl.col("rec_offset"))
    exprs = {
        "id": quoted("id", pl.col("id")),
        "name": pl.lit('"name":') + pl.col("name_json"),
        "created_at": quoted("created_at", pl.col("created_text")),
        # null for volumes without one, so concat_str leaves the member out entirely
        "host_id": quoted("host_id", pl.col("host_id")),
        "last_reconciled_at": pl.lit('"last_reconciled_at":')
        + pl.when(pl.col("rec_never"))
        .then(pl.lit("null"))
        .otherwise(pl.concat_str([pl.lit('"'), rec_text, pl.lit('"')])),
        "status": quoted(
            "status", pl.col("status").replace_strict(list(range(4)), _STATUSES.to_list())
        ),
    }
    members = [exprs[f] if f in exprs else number(f) for f in wanted]
    row = pl.concat_str(
        [pl.lit("{"), pl.concat_str(members, separator=",", ignore_nulls=True), pl.lit("},")]
    )
    rows = frame.select(row.alias("row")).to_series()
    # The rows' arrow data buffer is every row back to back: with each row ending in a comma it
    # is the array's inside (less the last comma), so the body is that buffer between brackets.
    arr = rows.to_arrow()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    inside = memoryview(arr.buffers()[2])[int(offsets[0]) : int(offsets[-1]) - 1]
    return Body((memoryview(b"["), inside, memoryview(b"]")), n)
