"""Small SVG charts rendered in Python, so a report is one self-contained offline file."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

#: Colour-blind-safe palette (Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

Formatter = Callable[[float], str]


@dataclass
class Series:
    """One line: points as (unix seconds, value)."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass
class Band:
    """A shaded interval: points as (unix seconds, low, high)."""

    name: str
    points: Sequence[tuple[float, float, float]]
    color: str = PALETTE[0]


@dataclass
class _Frame:
    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 72
    right: int = 16
    top: int = 16
    bottom: int = 40
    parts: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (value - self.x0) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (value - self.y0) / span * (self.height - self.top - self.bottom)
        )


def standalone(svg: str) -> str:
    """The chart as a standalone SVG document (inline SVG in HTML needs no namespace)."""
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _date_ticks(x0: float, x1: float, count: int = 6) -> list[float]:
    day = 86400.0
    span_days = max((x1 - x0) / day, 1.0)
    step = max(1, math.ceil(span_days / count)) * day
    first = math.ceil(x0 / day) * day
    return [first + i * step for i in range(int((x1 - first) // step) + 1)]


def _axes(frame: _Frame, y_ticks: Sequence[float], y_format: Formatter) -> None:
    for tick in y_ticks:
        y = frame.y(tick)
        frame.parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
            'class="grid"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_format(tick))}</text>'
        )
    for tick in _date_ticks(frame.x0, frame.x1):
        x = frame.x(tick)
        label = datetime.fromtimestamp(tick, UTC).strftime("%b %d")
        frame.parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.height - frame.bottom}" '
            'class="grid"/>'
            f'<text x="{x:.1f}" y="{frame.height - frame.bottom + 16}" text-anchor="middle">{label}</text>'
        )


#: A band's fill and its edges: strong enough to see beside a line of the same colour.
BAND_OPACITY = 0.3
BAND_EDGE_OPACITY = 0.8


def _svg(
    frame: _Frame,
    title: str,
    legend: Sequence[tuple[str, str, bool]],
    band_legend: Sequence[tuple[str, str]] = (),
) -> str:
    items = []
    x = frame.left
    for name, color, dashed in legend:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        items.append(
            f'<line x1="{x}" x2="{x + 18}" y1="{frame.height - 8}" y2="{frame.height - 8}" '
            f'stroke="{color}" stroke-width="3"{dash}/>'
            f'<text x="{x + 22}" y="{frame.height - 4}">{escape(name)}</text>'
        )
        x += 30 + 7 * len(name)
    for name, color in band_legend:
        items.append(
            f'<rect x="{x}" y="{frame.height - 14}" width="18" height="10" fill="{color}" '
            f'fill-opacity="{BAND_OPACITY}" stroke="{color}" stroke-opacity="{BAND_EDGE_OPACITY}"/>'
            f'<text x="{x + 22}" y="{frame.height - 4}">{escape(name)}</text>'
        )
        x += 30 + 7 * len(name)
    return (
        f'<svg viewBox="0 0 {frame.width} {frame.height}" '
        f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{escape(title)}" '
        'class="chart" font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        "<style>.grid{stroke:#e3e3e3;stroke-width:1}text{fill:#444}</style>"
        + "".join(frame.parts)
        + "".join(items)
        + "</svg>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_format: Formatter = lambda v: f"{v:g}",
    bands: Sequence[Band] = (),
    width: int = 900,
    height: int = 320,
    y_from_zero: bool = False,
    marker: tuple[float, str] | None = None,
) -> str:
    """Lines over time with optional shaded bands and a vertical marker (e.g. "now")."""
    xs = [p[0] for s in series for p in s.points] + [p[0] for b in bands for p in b.points]
    ys = [p[1] for s in series for p in s.points]
    ys += [v for b in bands for p in b.points for v in p[1:]]
    if not xs:
        xs, ys = [0.0, 1.0], [0.0, 1.0]
    low = 0.0 if y_from_zero else min(ys)
    ticks = nice_ticks(low, max(ys))
    frame = _Frame(width, height, min(xs), max(xs), ticks[0], ticks[-1])
    frame.bottom = 52
    _axes(frame, ticks, y_format)
    for band in bands:
        if not band.points:
            continue
        upper = " ".join(f"{frame.x(x):.1f},{frame.y(hi):.1f}" for x, _, hi in band.points)
        lower = " ".join(
            f"{frame.x(x):.1f},{frame.y(lo):.1f}" for x, lo, _ in reversed(band.points)
        )
        # the edges are drawn too: a narrow band would otherwise vanish under the forecast line
        low_edge = " ".join(f"{frame.x(x):.1f},{frame.y(lo):.1f}" for x, lo, _ in band.points)
        frame.parts.append(
            f'<polygon points="{upper} {lower}" fill="{band.color}" '
            f'fill-opacity="{BAND_OPACITY}" stroke="none">'
            f"<title>{escape(band.name)}</title></polygon>"
            + "".join(
                f'<polyline points="{edge}" fill="none" stroke="{band.color}" '
                f'stroke-opacity="{BAND_EDGE_OPACITY}" stroke-width="1"/>'
                for edge in (upper, low_edge)
            )
        )
    for s in series:
        if not s.points:
            continue
        points = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        frame.parts.append(
            f'<polyline points="{points}" fill="none" stroke="{s.color}" stroke-width="2"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
    if marker is not None:
        x = frame.x(marker[0])
        frame.parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{height - frame.bottom}" '
            'stroke="#888" stroke-dasharray="2 3"/>'
            f'<text x="{x + 4:.1f}" y="{frame.top + 10}">{escape(marker[1])}</text>'
        )
    legend = [(s.name, s.color, s.dashed) for s in series]
    return _svg(frame, title, legend, [(b.name, b.color) for b in bands])


def stacked_bars(
    days: Sequence[float],
    stacks: Mapping[str, Sequence[float]],
    *,
    title: str,
    colors: dict[str, str] | None = None,
    width: int = 900,
    height: int = 260,
) -> str:
    """One stacked bar per day (x in unix seconds at the day's start)."""
    colors = colors or {}
    names = list(stacks)
    totals = [sum(stacks[n][i] for n in names) for i in range(len(days))] or [1.0]
    ticks = nice_ticks(0.0, max(totals))
    x0 = min(days) if days else 0.0
    x1 = (max(days) if days else 1.0) + 86400.0
    frame = _Frame(width, height, x0, x1, 0.0, ticks[-1])
    frame.bottom = 52
    _axes(frame, ticks, lambda v: f"{v:,.0f}")
    bar = max(frame.x(x0 + 86400.0) - frame.x(x0) - 2, 1.0)
    for i, day in enumerate(days):
        base = 0.0
        label = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d")
        for j, name in enumerate(names):
            value = stacks[name][i]
            if value <= 0:
                continue
            top, bottom = frame.y(base + value), frame.y(base)
            frame.parts.append(
                f'<rect x="{frame.x(day) + 1:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                f'height="{bottom - top:.1f}" fill="{colors.get(name, PALETTE[j % len(PALETTE)])}">'
                f"<title>{label} {escape(name)}: {value:,.0f}</title></rect>"
            )
            base += value
    legend = [(n, colors.get(n, PALETTE[j % len(PALETTE)]), False) for j, n in enumerate(names)]
    return _svg(frame, title, legend)


def sparkline(
    values: Sequence[float | None], *, width: int = 120, height: int = 24, limit: float = 1.0
) -> str:
    """A tiny utilization line (0..limit), with the limit drawn as a faint top rule."""
    points = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(points) < 2:
        return ""
    top = max(limit, max(v for _, v in points))
    n = max(len(values) - 1, 1)
    coords = " ".join(
        f"{i / n * (width - 2) + 1:.1f},{height - 1 - v / top * (height - 2):.1f}"
        for i, v in points
    )
    rule = height - 1 - limit / top * (height - 2)
    return (
        f'<svg class="spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-hidden="true">'
        f'<line x1="0" x2="{width}" y1="{rule:.1f}" y2="{rule:.1f}" stroke="#d55e00" stroke-opacity="0.4"/>'
        f'<polyline points="{coords}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/></svg>'
    )


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    y_format: Formatter = lambda v: f"{v:g}",
    colors: dict[str, str] | None = None,
    width: int = 900,
    height: int = 260,
) -> str:
    """Bars side by side per group (a category on x), one colour per series; a missing value
    leaves its slot empty."""
    colors = colors or {}
    names = list(series)
    values = [v for n in names for v in series[n] if v is not None and math.isfinite(v)]
    ticks = nice_ticks(0.0, max(values) if values else 1.0)
    frame = _Frame(width, height, 0.0, float(len(groups) or 1), 0.0, ticks[-1])
    frame.bottom = 52
    for tick in ticks:
        y = frame.y(tick)
        frame.parts.append(
            f'<line x1="{frame.left}" x2="{width - frame.right}" y1="{y:.1f}" y2="{y:.1f}" '
            'class="grid"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_format(tick))}</text>'
        )
    slot = (frame.x(1.0) - frame.x(0.0)) * 0.8 / max(len(names), 1)
    for i, group in enumerate(groups):
        start = frame.x(float(i)) + (frame.x(1.0) - frame.x(0.0)) * 0.1
        frame.parts.append(
            f'<text x="{frame.x(i + 0.5):.1f}" y="{height - frame.bottom + 16}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
        for j, name in enumerate(names):
            value = series[name][i]
            if value is None or not math.isfinite(value):
                continue
            top, bottom = frame.y(value), frame.y(0.0)
            frame.parts.append(
                f'<rect x="{start + j * slot:.1f}" y="{top:.1f}" width="{max(slot - 2, 1.0):.1f}" '
                f'height="{bottom - top:.1f}" fill="{colors.get(name, PALETTE[j % len(PALETTE)])}">'
                f"<title>{escape(group)} {escape(name)}: {escape(y_format(value))}</title></rect>"
            )
    legend = [(n, colors.get(n, PALETTE[j % len(PALETTE)]), False) for j, n in enumerate(names)]
    return _svg(frame, title, legend)
