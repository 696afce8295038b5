"""Per-window statistics: which windows are due, what they measure, and where the numbers go.

The public surface for the layers above (the API's query layer, benches): the engine, the window
arithmetic, and the sampled drift columns of a stored time range.
"""

from streams.stats.engine import StatsEngine
from streams.stats.tracker import window_bounds
from streams.stats.window_data import DriftColumns, drift_columns, fetch_drift_columns

__all__ = ["DriftColumns", "StatsEngine", "drift_columns", "fetch_drift_columns", "window_bounds"]
