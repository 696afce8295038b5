"""Chart data and wording helpers of the dashboard, as pure functions (pages are checked in
test_pages.py and, drawn by Plotly, in test_browser.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from api.ui import charts
from api.ui.web import duration, fmt_value, plural

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)


class TestLines:
    """Lines break at windows without statistics instead of ramping across them."""

    def test_a_gap_becomes_a_break(self) -> None:
        xs = [T0, T0 + STEP, T0 + 5 * STEP, T0 + 6 * STEP]
        trace = charts.line("calls", xs, [1.0, 2.0, 3.0, 4.0], 0, STEP)
        assert trace["y"] == [1.0, 2.0, None, 3.0, 4.0]
        assert trace["x"][2] == charts.iso(T0 + 2 * STEP)  # the break sits right after the last window

    def test_consecutive_windows_stay_joined(self) -> None:
        xs = [T0 + i * STEP for i in range(4)]
        assert None not in charts.line("calls", xs, [1.0, 2.0, 3.0, 4.0], 0, STEP)["y"]

    def test_tooltip_data_breaks_with_its_line(self) -> None:
        xs = [T0, T0 + STEP, T0 + 5 * STEP]
        trace = charts.line("estimate", xs, [0.5, 0.6, 0.7], 0, STEP, customdata=[100, 200, 300])
        assert trace["customdata"] == [100, 200, None, 300]  # each point keeps its own sample size

    def test_bands_break_with_their_line(self) -> None:
        traces = charts.band("thumbs", [T0, T0 + 3 * STEP], [0.1, 0.2], [0.5, 0.6], 0, STEP)
        assert [t["y"] for t in traces] == [[0.5, None, 0.6], [0.1, None, 0.2]]


class TestFigures:
    """Every axis has a title; a chart with nothing to draw has no traces (the page says "no data")."""

    def test_axes_are_titled(self) -> None:
        figure = charts.figure([charts.line("p95", [T0], [1.0], 0)], y_title="latency (ms)")
        assert figure["layout"]["yaxis"]["title"]["text"] == "latency (ms)"
        assert figure["layout"]["xaxis"]["title"]["text"] == "window start (UTC)"

    def test_traces_without_values_make_an_empty_figure(self) -> None:
        nothing = charts.line("cost", [T0, T0 + STEP], [float("nan"), None], 0)
        assert charts.figure([nothing], y_format="$.4f")["data"] == []

    def test_yes_no_columns_are_two_bars(self) -> None:
        figure = charts.histogram_pair(
            np.array([0.0, 1.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0]), column="q", yes_no=True
        )
        assert [t["x"] for t in figure["data"]] == [["no", "yes"], ["no", "yes"]]
        assert [t["y"] for t in figure["data"]] == [[0.25, 0.75], [2 / 3, 1 / 3]]
        assert figure["layout"]["xaxis"]["type"] == "category"
        assert figure["layout"]["xaxis"]["title"]["text"] == "q"

    def test_counts_that_happen_to_be_zero_or_one_stay_numbers(self) -> None:
        figure = charts.histogram_pair(np.array([1.0, 1.0]), np.array([0.0, 1.0]), column="prompt.word_count")
        assert figure["layout"]["xaxis"]["type"] == "linear"

    def test_numeric_bins_on_a_numeric_axis(self) -> None:
        """Bin centres are numbers Plotly labels itself: no `1.03e+03` category labels cut off."""
        values = np.linspace(0, 2000, 500)
        figure = charts.histogram_pair(values, values + 500, column="prompt.length")
        assert figure["layout"]["xaxis"]["type"] == "linear"
        assert all(isinstance(x, float) for t in figure["data"] for x in t["x"])
        assert all(len(t["width"]) == len(t["x"]) for t in figure["data"])

    def test_few_whole_numbers_get_a_bar_each(self) -> None:
        figure = charts.histogram_pair(np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0]))
        assert figure["data"][0]["x"] == [1.0, 2.0, 3.0, 4.0]


class TestSparklines:
    """Sparklines start at zero: a one-call change is a flat line, not a sawtooth."""

    def test_small_changes_stay_flat(self) -> None:
        spark = charts.sparkline([166, 167, 166, 167], width=100, height=24)
        assert spark is not None
        ys = [float(point.split(",")[1]) for point in spark.points.split()]
        assert max(ys) - min(ys) < 0.3  # of a 20 px drawing height

    def test_a_real_change_still_shows(self) -> None:
        spark = charts.sparkline([10, 200], width=100, height=24)
        assert spark is not None
        ys = [float(point.split(",")[1]) for point in spark.points.split()]
        assert ys[0] - ys[1] > 15


class TestWording:
    def test_plural(self) -> None:
        assert plural(1, "open alert") == "1 open alert"
        assert plural(0, "alert") == "0 alerts"
        assert plural(1200, "call") == "1,200 calls"
        assert plural(1.0, "attempt") == "1 attempt"

    def test_duration(self) -> None:
        assert [duration(s) for s in (10, 60, 300, 3600, 86400, 90)] == ["10 s", "1 min", "5 min", "1 h", "1 d", "90 s"]

    def test_values_without_exponents(self) -> None:
        assert [fmt_value(v) for v in (1030.0, 12345.67, 0.25, 3.14159, 2.6e-99, 0.0, None)] == [
            "1,030",
            "12,345.7",
            "0.25",
            "3.142",
            "2.60e-99",
            "0",
            "–",
        ]
