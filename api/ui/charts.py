"""Chart data for the pages: Plotly figure specs (drawn in the browser by ``static/ui.js``) and
sparklines as server-side SVG point lists (fifty models' sparklines cost no script at all).

Only data goes to the browser, in ``<script type="application/json">`` blocks: names stay strings
inside JSON, and Plotly writes them as SVG text nodes, never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

# Health colours: each passes WCAG AA (4.5:1) as text on white and as a white-text badge (tests check).
SEVERITY_COLOURS = {"critical": "#b3261e", "warning": "#8a5300", "info": "#1d4ed8"}
PALETTE = ["#1d4ed8", "#b3261e", "#0f766e", "#8a5300", "#6d28d9", "#be185d", "#374151", "#15803d"]
_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Sparkline:
    points: str
    last_x: float
    last_y: float
    width: int
    height: int


def sparkline(values: Sequence[float], width: int = 120, height: int = 28) -> Sparkline | None:
    """An SVG polyline of ``values`` scaled into the box (None for fewer than two finite values)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return None
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = (width - 4) / (len(values) - 1)
    coords = []
    for index, value in enumerate(values):
        if math.isfinite(value):
            coords.append((2 + index * step, height - 2 - (value - low) / span * (height - 4)))
    text = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    return Sparkline(text, coords[-1][0], coords[-1][1], width, height)


def wilson(rate: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sensible at small n and rates near 0 or 1)."""
    if n <= 0 or not math.isfinite(rate):
        return (math.nan, math.nan)
    denominator = 1 + _Z95**2 / n
    centre = (rate + _Z95**2 / (2 * n)) / denominator
    half = _Z95 * math.sqrt(rate * (1 - rate) / n + _Z95**2 / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def line(name: str, xs: Sequence[datetime], ys: Sequence[float | None], index: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": [iso(x) for x in xs],
        "y": [None if y is None or not math.isfinite(y) else y for y in ys],
        "line": {"color": PALETTE[index % len(PALETTE)], "width": 2},
        "marker": {"size": 4},
        **extra,
    }


def band(
    name: str, xs: Sequence[datetime], lows: Sequence[float], highs: Sequence[float], index: int
) -> list[dict[str, Any]]:
    """A shaded confidence band: the upper edge, then the lower edge filled up to it."""
    colour = PALETTE[index % len(PALETTE)]
    x = [iso(v) for v in xs]
    clean = [[None if not math.isfinite(v) else v for v in seq] for seq in (highs, lows)]
    edge = {
        "type": "scatter",
        "mode": "lines",
        "x": x,
        "line": {"width": 0, "color": colour},
        "hoverinfo": "skip",
        "showlegend": False,
    }
    return [
        {**edge, "name": f"{name} 95% high", "y": clean[0]},
        {
            **edge,
            "name": f"{name} 95% CI",
            "y": clean[1],
            "fill": "tonexty",
            "fillcolor": _tint(colour),
            "showlegend": True,
        },
    ]


def _tint(colour: str) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.18)"


def figure(
    traces: list[dict[str, Any]],
    *,
    y_title: str = "",
    y_format: str = "",
    markers: Sequence[dict[str, Any]] = (),
    bar: bool = False,
) -> dict[str, Any]:
    """A Plotly figure with our layout; ``markers`` are alerts drawn as vertical lines on the time axis."""
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": m["x"],
            "x1": m["x"],
            "y0": 0,
            "y1": 1,
            "line": {"color": SEVERITY_COLOURS.get(m["severity"], "#374151"), "width": 1.5, "dash": "dot"},
        }
        for m in markers
    ]
    layout: dict[str, Any] = {
        "margin": {"l": 56, "r": 16, "t": 8, "b": 36},
        "height": 260,
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.22},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {"type": "category" if bar else "date", "gridcolor": "#e5e7eb"},
        "yaxis": {"title": {"text": y_title}, "tickformat": y_format, "gridcolor": "#e5e7eb", "rangemode": "tozero"},
        "shapes": shapes,
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1f2937"},
    }
    if bar:
        layout["barmode"] = "overlay"
    return {"data": traces, "layout": layout}


def histogram_pair(reference: np.ndarray | None, current: np.ndarray, bins: int = 20) -> dict[str, Any]:
    """Reference vs current distribution of a numeric column, as shares per shared bin."""
    current = current[np.isfinite(current)] if current.dtype.kind == "f" else current.astype(float)
    ref = reference[np.isfinite(reference)] if reference is not None else np.array([])
    both = np.concatenate([ref, current]) if ref.size else current
    if both.size == 0:
        return figure([], bar=True)
    edges = np.histogram_bin_edges(both, bins=bins)
    labels = [f"{(edges[i] + edges[i + 1]) / 2:.3g}" for i in range(len(edges) - 1)]
    traces = []
    for index, (name, values) in enumerate((("reference", ref), ("current", current))):
        if values.size:
            counts, _ = np.histogram(values, bins=edges)
            traces.append(
                {
                    "type": "bar",
                    "name": name,
                    "x": labels,
                    "y": (counts / values.size).tolist(),
                    "marker": {"color": PALETTE[index], "opacity": 0.6},
                }
            )
    return figure(traces, y_title="share", y_format=".0%", bar=True)


def category_pair(reference: dict[str, float], current: dict[str, float], top: int = 15) -> dict[str, Any]:
    """Reference vs current shares of a categorical column's most common values."""
    ref_total, cur_total = sum(reference.values()) or 1.0, sum(current.values()) or 1.0
    keys = sorted(
        set(reference) | set(current), key=lambda k: -(reference.get(k, 0) / ref_total + current.get(k, 0) / cur_total)
    )
    keys = keys[:top]
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": keys,
            "y": [counts.get(k, 0) / total for k in keys],
            "marker": {"color": PALETTE[index], "opacity": 0.6},
        }
        for index, (name, counts, total) in enumerate(
            (("reference", reference, ref_total), ("current", current, cur_total))
        )
    ]
    return figure(traces, y_title="share", y_format=".0%", bar=True)


def threshold_chart(
    xs: Sequence[datetime],
    ys: Sequence[float | None],
    *,
    name: str,
    threshold: float | None,
    threshold_name: str,
    window: datetime,
    severity: str,
    log_y: bool = False,
    y_format: str = "",
) -> dict[str, Any]:
    """A statistic over the windows around an alert: its line, the threshold as a dashed horizontal
    line (named in the legend), and the alert's window as a dotted vertical line."""
    traces = [line(name, xs, ys, 0)]
    if threshold is not None and math.isfinite(threshold) and xs:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": threshold_name,
                "x": [iso(xs[0]), iso(xs[-1])],
                "y": [threshold, threshold],
                "line": {"color": SEVERITY_COLOURS.get(severity, "#374151"), "width": 1.5, "dash": "dash"},
                "hoverinfo": "skip",
            }
        )
    spec = figure(traces, y_format=y_format, markers=[{"x": iso(window), "severity": severity}])
    if log_y:
        # ticks at whole decades only (Plotly's minor labels "2" and "5" read like values), at most ~6
        lowest = min([y for y in ys if y is not None and y > 0] + ([threshold] if threshold else []), default=0.1)
        decades = max(1, math.ceil(-math.log10(lowest)) + 1)
        spec["layout"]["yaxis"] |= {
            "type": "log",
            "rangemode": "normal",
            "exponentformat": "e",
            "dtick": max(1, math.ceil(decades / 6)),
        }
    return spec
