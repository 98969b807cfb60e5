"""The `/v1/volumes` JSON body, built column-wise with polars string expressions, in any of the
whitespace layouts a provider may use (compact, `", "`-separated, pretty-printed)."""

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


class LayoutError(ValueError):
    """A layout that is not one of the styles, or whitespace that JSON does not allow."""


LAYOUT_STYLES = ("compact", "spaced", "pretty")


@dataclass(frozen=True)
class Layout:
    """How the same JSON array is written: `compact` (`[{"a":1},{"a":2}]`), `spaced` (Python's
    `json.dumps` default, `", "` and `": "`), or `pretty` (`json.dumps(indent=...)`, one member
    per line, with `\n` or `\r\n`), optionally with whitespace before and after the array."""

    style: str = "compact"
    indent: int = 2
    newline: str = "\n"
    padding: str = ""

    def __post_init__(self) -> None:
        if self.style not in LAYOUT_STYLES:
            raise LayoutError(
                f"layout must be one of {', '.join(LAYOUT_STYLES)}, got {self.style!r}"
            )
        if not 0 <= self.indent <= 16:
            raise LayoutError(f"indent must be 0 to 16 spaces, got {self.indent}")
        if self.newline not in ("\n", "\r\n"):
            raise LayoutError(f"newline must be \\n or \\r\\n, got {self.newline!r}")
        if self.padding.strip(" \t\n\r"):
            raise LayoutError("padding must be JSON whitespace (space, tab, \\n, \\r)")

    @classmethod
    def parse(cls, spec: object) -> Layout:
        """A layout from its style name or a JSON object `{"style", "indent", "newline",
        "padding"}` (what `POST /_sim/layout` takes)."""
        if isinstance(spec, str):
            return cls(spec)
        if not isinstance(spec, dict):
            raise LayoutError("expected a layout name or object")
        unknown = set(spec) - {"style", "indent", "newline", "padding"}
        if unknown:
            raise LayoutError(f"unknown layout keys: {sorted(unknown)}")
        indent = spec.get("indent", 2)
        if not isinstance(indent, int) or isinstance(indent, bool):
            raise LayoutError("indent must be an integer")
        return cls(
            str(spec.get("style", "compact")),
            indent,
            str(spec.get("newline", "\n")),
            str(spec.get("padding", "")),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "style": self.style,
            "indent": self.indent,
            "newline": self.newline,
            "padding": self.padding,
        }

    def _pieces(self) -> tuple[str, str, str, str, str, str, str]:
        """(array open, object open, key/value separator, member separator, object close,
        element separator, array close) around non-empty arrays of non-empty objects."""
        if self.style == "compact":
            return "[", "{", ":", ",", "}", ",", "]"
        if self.style == "spaced":
            return "[", "{", ": ", ", ", "}", ", ", "]"
        nl, one = self.newline, " " * self.indent
        return (
            "[" + nl,
            one + "{" + nl + one * 2,
            ": ",
            "," + nl + one * 2,
            nl + one + "}",
            "," + nl,
            nl + "]",
        )


COMPACT = Layout()


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
    static: pl.DataFrame,
    state: dict[str, np.ndarray],
    fields: tuple[str, ...] | None,
    layout: Layout = COMPACT,
) -> Body:
    """Serialize rows to `[{...},{...}]` in `layout`. host_id appears only when asked for, and
    then only on the volumes that have one; null quotas and timestamps are written as `null`."""
    wanted = fields if fields is not None else DEFAULT_FIELDS
    n = static.height
    head, tail = layout.padding.encode(), layout.padding.encode()
    if n == 0:  # `json.dumps([], indent=2)` is `[]` too
        return Body((memoryview(head + b"[]" + tail),), 0)
    array_open, object_open, colon, member_sep, object_close, element_sep, array_close = (
        layout._pieces()
    )
    if not wanted:
        empty = object_open.rstrip(" \r\n") + "}"
        objects = element_sep.join([empty] * n).encode()
        return Body(
            (memoryview(head + array_open.encode() + objects + array_close.encode() + tail),), n
        )

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

    def key(name: str) -> str:
        return f'"{name}"{colon}'

    def quoted(name: str, text: pl.Expr) -> pl.Expr:
        return pl.concat_str([pl.lit(key(name) + '"'), text, pl.lit('"')])

    def number(name: str) -> pl.Expr:
        return pl.lit(key(name)) + pl.col(name).cast(pl.String).fill_null("null")

    rec_text = instant_text(pl.col("rec_us"), pl.col("rec_style"), pl.col("rec_offset"))
    exprs = {
        "id": quoted("id", pl.col("id")),
        "name": pl.lit(key("name")) + pl.col("name_json"),
        "created_at": quoted("created_at", pl.col("created_text")),
        # null for volumes without one, so concat_str leaves the member out entirely
        "host_id": quoted("host_id", pl.col("host_id")),
        "last_reconciled_at": pl.lit(key("last_reconciled_at"))
        + pl.when(pl.col("rec_never"))
        .then(pl.lit("null"))
        .otherwise(pl.concat_str([pl.lit('"'), rec_text, pl.lit('"')])),
        "status": quoted(
            "status", pl.col("status").replace_strict(list(range(4)), _STATUSES.to_list())
        ),
    }
    members = [exprs[f] if f in exprs else number(f) for f in wanted]
    row = pl.concat_str(
        [
            pl.lit(object_open),
            pl.concat_str(members, separator=member_sep, ignore_nulls=True),
            pl.lit(object_close + element_sep),
        ]
    )
    rows = frame.select(row.alias("row")).to_series()
    # The rows' arrow data buffer is every row back to back: with each row ending in the element
    # separator it is the array's inside (less the last separator), so the body is that buffer
    # between the brackets.
    arr = rows.to_arrow()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    end = int(offsets[-1]) - len(element_sep.encode())
    inside = memoryview(arr.buffers()[2])[int(offsets[0]) : end]
    return Body(
        (memoryview(head + array_open.encode()), inside, memoryview(array_close.encode() + tail)),
        n,
    )
