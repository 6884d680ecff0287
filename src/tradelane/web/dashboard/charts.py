"""Small server-side charts: the geometry of a stacked bar chart, drawn as inline SVG by a template
macro (no JavaScript, no chart library). Pure: data in, coordinates out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

#: Room for the y-axis labels (left) and the x-axis labels (bottom), in SVG units.
LEFT = 34.0
BOTTOM = 18.0
TOP = 6.0
RIGHT = 4.0


@dataclass(frozen=True, slots=True)
class Bar:
    series: str
    x: float
    y: float
    width: float
    height: float
    value: int
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True, slots=True)
class XLabel:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    series: list[str]
    bars: list[Bar]
    ticks: list[Tick]
    xlabels: list[XLabel]
    baseline: float
    plot_left: float
    plot_right: float
    total: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^k that is >= ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def stacked_bars(
    starts: Sequence[datetime],
    values: Mapping[str, Sequence[int]],
    *,
    width: int = 520,
    height: int = 150,
    label_every: int = 6,
) -> BarChart:
    """One bar per bucket (``starts[i]``), the series stacked bottom-up in the order given.

    Every series must have one value per bucket. Labels show the bucket's UTC hour."""
    n = len(starts)
    for name, series in values.items():
        if len(series) != n:
            raise ValueError(f"series {name!r} has {len(series)} values for {n} buckets")
    totals = [sum(series[i] for series in values.values()) for i in range(n)]
    top = nice_ceiling(max(totals, default=0))
    plot_h = height - TOP - BOTTOM
    plot_w = width - LEFT - RIGHT
    slot = plot_w / n if n else plot_w
    gap = min(2.0, slot * 0.2)
    baseline = height - BOTTOM
    bars: list[Bar] = []
    for i, start in enumerate(starts):
        y = baseline
        for name, series in values.items():
            value = int(series[i])
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            label = f"{start:%Y-%m-%d %H:00} UTC: {value} {name}"
            bars.append(Bar(name, LEFT + i * slot + gap / 2, y, slot - gap, h, value, label))
    marks = {0, top} | ({top // 2} if top % 2 == 0 else set())
    ticks = [Tick(baseline - plot_h * v / top, v) for v in sorted(marks)]
    xlabels = [
        XLabel(LEFT + i * slot + slot / 2, f"{start:%H}h")
        for i, start in enumerate(starts)
        if label_every and (n - 1 - i) % label_every == 0
    ]
    return BarChart(
        width=width,
        height=height,
        series=list(values),
        bars=bars,
        ticks=ticks,
        xlabels=xlabels,
        baseline=baseline,
        plot_left=LEFT,
        plot_right=width - RIGHT,
        total=sum(totals),
    )
