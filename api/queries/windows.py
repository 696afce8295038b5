"""Stored traffic of one window or time range, as the columns the drift tests compare.

For the per-window report and for pinning a time range as a reference: both read the same
deterministic sample the stats engine reads, so what a user sees is what the engine measured.
"""

from __future__ import annotations

from datetime import datetime

from schemas.stats import WindowKey
from schemas.times import as_utc
from streams.stats import DriftColumns, fetch_drift_columns, window_bounds
from streams.storage import Storage


def window_key(project: str, model: str, moment: datetime, window_seconds: int) -> WindowKey:
    """The window that contains ``moment`` (naive = UTC)."""
    start, end = window_bounds(as_utc(moment), window_seconds)
    return WindowKey(project, model, start, end)


def sampled_columns(storage: Storage, key: WindowKey, rows: int) -> DriftColumns:
    """At most ``rows`` of the range's events (by event-id hash), as drift columns."""
    return fetch_drift_columns(storage, key, rows)
