"""Per-window statistics: which windows are due, what they measure, and where the numbers go."""

from streams.stats.engine import StatsEngine

__all__ = ["StatsEngine"]
