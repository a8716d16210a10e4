"""The Overview's trend chart, drawn on the server as SVG: no chart library, no script.

:func:`trend_chart` turns the live-per-day series into geometry (a line, the
area under it, y-axis ticks at round numbers, a few date labels); the
template writes it out as ``<svg>`` with classes only (the CSP forbids
inline styles), so the chart is styled by the stylesheet and readable by
screen readers through its ``<title>``/``<desc>`` and the table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH = 720
HEIGHT = 220
PAD_LEFT = 44
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 28


@dataclass(frozen=True, slots=True)
class Tick:
    """A gridline with its label, at ``y`` (horizontal) or ``x`` (date labels)."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    day: str
    value: int


@dataclass(frozen=True, slots=True)
class TrendChart:
    """Everything the template needs to draw the chart."""

    width: int
    height: int
    line: str  # the path's d attribute
    area: str
    points: tuple[Point, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    peak: int
    latest: int
    first: int


def _nice_step(peak: int, lines: int = 4) -> int:
    """A round step (1, 2, 5 × 10^n) so that ``lines`` steps cover ``peak``."""
    if peak <= lines:
        return 1
    raw = peak / lines
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def _label(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}"


def trend_chart(series: Sequence[tuple[date, int]]) -> TrendChart:
    """Geometry of the line chart of ``series`` (oldest first, at least one day)."""
    if not series:
        raise ValueError("a trend needs at least one day")
    peak = max(v for _, v in series)
    step = _nice_step(peak)
    top_value = max(step, math.ceil(peak / step) * step)
    left, right = PAD_LEFT, WIDTH - PAD_RIGHT
    top, bottom = PAD_TOP, HEIGHT - PAD_BOTTOM
    span = max(1, len(series) - 1)

    def x(i: int) -> float:
        return round(left + (right - left) * i / span, 1)

    def y(v: int) -> float:
        return round(bottom - (bottom - top) * v / top_value, 1)

    points = tuple(Point(x(i), y(v), d.isoformat(), v) for i, (d, v) in enumerate(series))
    line = "M" + " L".join(f"{p.x},{p.y}" for p in points)
    area = f"{line} L{points[-1].x},{bottom} L{points[0].x},{bottom} Z"
    y_ticks = tuple(Tick(y(v), str(v)) for v in range(0, top_value + 1, step))
    label_every = max(1, math.ceil(len(series) / 6))
    x_ticks = tuple(
        Tick(x(i), _label(d))
        for i, (d, _) in enumerate(series)
        if (len(series) - 1 - i) % label_every == 0
    )
    return TrendChart(
        width=WIDTH,
        height=HEIGHT,
        line=line,
        area=area,
        points=points,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        peak=peak,
        latest=series[-1][1],
        first=series[0][1],
    )
