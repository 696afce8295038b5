"""Datetimes across the ClickHouse boundary: everything is UTC, bound as DateTime64(3, 'UTC') literals.

chDB returns naive datetimes for UTC columns, so values read back are made aware here too.
"""

from __future__ import annotations

from datetime import datetime

from schemas.times import as_utc

__all__ = ["as_utc", "ch_time"]


def ch_time(value: datetime) -> str:
    """A datetime as a ``DateTime64(3, 'UTC')`` literal for server-side parameter binding."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
