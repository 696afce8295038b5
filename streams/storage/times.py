"""Datetimes across the ClickHouse boundary: everything is UTC, bound as DateTime64(3, 'UTC') literals.

chDB returns naive datetimes for UTC columns, so values read back are made aware here too. Every query
that filters by time builds its clauses with ``time_range``: one rule for which bound is inclusive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.times import as_utc

__all__ = ["as_utc", "ch_time", "time_range"]


def ch_time(value: datetime) -> str:
    """A datetime as a ``DateTime64(3, 'UTC')`` literal for server-side parameter binding."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def time_range(
    params: dict[str, Any],
    since: datetime | None,
    until: datetime | None,
    *,
    column: str = "timestamp",
    end_column: str | None = None,
    names: tuple[str, str] = ("since", "until"),
) -> list[str]:
    """The clauses selecting the rows of ``[since, until)`` (``None``: open on that side); the bounds go
    into ``params`` under ``names``.

    Rows stamped at a moment: ``column >= since AND column < until``. Rows that span time (``end_column``
    given, e.g. windows from ``window_start`` to ``window_end``): those overlapping the range,
    ``end_column > since AND column < until``.
    """
    low, high = names
    clauses = []
    if since is not None:
        clauses.append(f"{end_column or column} {'>' if end_column else '>='} {{{low}:DateTime64(3, 'UTC')}}")
        params[low] = ch_time(since)
    if until is not None:
        clauses.append(f"{column} < {{{high}:DateTime64(3, 'UTC')}}")
        params[high] = ch_time(until)
    return clauses
