"""Time parameters every route checks the same way: storable (2000 ≤ t < 2200 UTC) and ordered.

A naive time means UTC, as it does for events (``schemas.events``), so one rule and one message serve
the feedback, statistics, alerts, references and reports routes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from api.errors import unprocessable
from schemas.events import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def check_moment(loc: list[str | int], value: datetime | None) -> None:
    """422 at ``loc`` unless ``value`` is None or within the storable range."""
    if value is not None and not EARLIEST_TIMESTAMP <= _utc(value) < LATEST_TIMESTAMP:
        raise unprocessable(loc, f"'{loc[-1]}' must be between 2000 and 2200")


def check_time_range(since: datetime | None, until: datetime | None, where: str = "query") -> None:
    """Both bounds storable, and ``since`` before ``until`` when both are given."""
    check_moment([where, "since"], since)
    check_moment([where, "until"], until)
    if since and until and _utc(since) >= _utc(until):
        raise unprocessable([where, "since"], "'since' must be before 'until'")
