"""Chart data for the pages: Plotly figure specs (drawn in the browser by ``static/ui.js``) and
sparklines as server-side SVG point lists (fifty models' sparklines cost no script at all).

Only data goes to the browser, in ``<script type="application/json">`` blocks: names stay strings
inside JSON, and Plotly writes them as SVG text nodes, never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    """An SVG polyline of ``values`` scaled into the box (None for fewer than two finite values).

    The scale starts at zero for quantities that cannot go below it (calls, milliseconds, dollars,
    rates), so 166 → 167 calls is a flat line, not a sawtooth from the bottom of the box to its top."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return None
    low, high = min(0.0, min(finite)), max(finite)
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


def with_gaps(
    xs: Sequence[datetime], ys: Sequence[float | None], step: timedelta | None
) -> tuple[list[datetime], list[float | None]]:
    """A ``None`` point inserted wherever consecutive points are more than ``step`` apart, so the line
    breaks at windows that have no statistics instead of drawing a ramp across them."""
    if step is None or len(xs) < 2:
        return list(xs), list(ys)
    out_x, out_y = [xs[0]], [ys[0]]
    for before, x, y in zip(xs, xs[1:], ys[1:], strict=False):
        if x - before > step:
            out_x.append(before + step)
            out_y.append(None)
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def line(
    name: str,
    xs: Sequence[datetime],
    ys: Sequence[float | None],
    index: int,
    step: timedelta | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One series over time; with ``step`` (the window or bucket length) the line breaks at gaps (and a
    ``customdata`` list, one item per point, gets the same gaps so each tooltip keeps its point's item)."""
    if extra.get("customdata") is not None:
        extra = {**extra, "customdata": with_gaps(xs, extra["customdata"], step)[1]}
    xs, ys = with_gaps(xs, ys, step)
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
    name: str,
    xs: Sequence[datetime],
    lows: Sequence[float],
    highs: Sequence[float],
    index: int,
    step: timedelta | None = None,
) -> list[dict[str, Any]]:
    """A shaded confidence band: the upper edge, then the lower edge filled up to it."""
    colour = PALETTE[index % len(PALETTE)]
    gapped, highs_ = with_gaps(xs, highs, step)
    lows_ = with_gaps(xs, lows, step)[1]
    x = [iso(v) for v in gapped]
    clean = [[None if v is None or not math.isfinite(v) else v for v in seq] for seq in (highs_, lows_)]
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
    x_title: str = "window start (UTC)",
    x_range: tuple[datetime, datetime] | None = None,
    markers: Sequence[dict[str, Any]] = (),
    bar: bool = False,
) -> dict[str, Any]:
    """A Plotly figure with our layout and both axes titled; ``markers`` are alerts drawn as vertical
    lines on the time axis. A figure with nothing to draw has no traces (the page says "no data")."""
    if not any(y is not None for trace in traces for y in trace.get("y", [])):
        traces = []
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
        "margin": {"l": 64, "r": 16, "t": 8, "b": 48},
        "height": 280,
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.3},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {
            "type": "linear" if bar else "date",
            "title": {"text": x_title, "standoff": 4},
            "gridcolor": "#e5e7eb",
            "automargin": True,
        },
        "yaxis": {
            "title": {"text": y_title},
            "tickformat": y_format,
            "gridcolor": "#e5e7eb",
            "rangemode": "tozero",
            "automargin": True,
        },
        "shapes": shapes,
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1f2937"},
    }
    if x_range is not None:  # the range asked for, so a model that went quiet shows the silence
        layout["xaxis"]["range"] = [iso(x_range[0]), iso(x_range[1])]
    if bar:
        layout["barmode"] = "overlay"
    return {"data": traces, "layout": layout}


def histogram_pair(
    reference: np.ndarray | None,
    current: np.ndarray,
    column: str = "value",
    bins: int = 20,
    *,
    yes_no: bool = False,
) -> dict[str, Any]:
    """Reference vs current distribution of a numeric column, as shares per shared bin on a numeric
    axis (Plotly labels the ticks); a ``yes_no`` column (1 yes, 0 no) as two bars instead."""
    current = current[np.isfinite(current)] if current.dtype.kind == "f" else current.astype(float)
    ref = reference[np.isfinite(reference)] if reference is not None else np.array([])
    both = np.concatenate([ref, current]) if ref.size else current
    if both.size == 0:
        return figure([], bar=True, x_title=column)
    if yes_no:
        return category_pair(_yes_no(ref), _yes_no(current), column=column, order=("no", "yes"))
    edges = np.histogram_bin_edges(both, bins=bins)
    if np.all(both == np.round(both)) and edges[-1] - edges[0] < bins:  # a few whole numbers: one bar each
        edges = np.arange(np.floor(edges[0]) - 0.5, np.ceil(edges[-1]) + 1.5)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    traces = []
    for index, (name, values) in enumerate((("reference", ref), ("current", current))):
        if values.size:
            counts, _ = np.histogram(values, bins=edges)
            traces.append(
                {
                    "type": "bar",
                    "name": name,
                    "x": centres.tolist(),
                    "width": widths.tolist(),
                    "y": (counts / values.size).tolist(),
                    "marker": {"color": PALETTE[index], "opacity": 0.6},
                    "hovertemplate": "%{x:,.4~g}: %{y:.1%}",
                }
            )
    return figure(traces, y_title="share of rows", y_format=".0%", x_title=column, bar=True)


def _yes_no(values: np.ndarray) -> dict[str, float]:
    return {"no": float((values == 0).sum()), "yes": float((values == 1).sum())} if values.size else {}


def category_pair(
    reference: dict[str, float],
    current: dict[str, float],
    top: int = 15,
    column: str = "value",
    order: Sequence[str] = (),
) -> dict[str, Any]:
    """Reference vs current shares of a categorical column's most common values (or of ``order``'s)."""
    ref_total, cur_total = sum(reference.values()) or 1.0, sum(current.values()) or 1.0
    keys = list(order) or sorted(
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
    out = figure(traces, y_title="share of rows", y_format=".0%", x_title=column, bar=True)
    out["layout"]["xaxis"]["type"] = "category"
    return out


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
