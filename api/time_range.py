"""Time parameters every route reads the same way: naive means UTC, and a range must be ordered.

Events are stored only between 2000 and 2200 UTC (``schemas.events``), so a bound outside that range
selects exactly what the nearest storable bound selects: bounds are clamped, not refused, and any
date-time the OpenAPI allows can be asked. One rule and one message serve the feedback, statistics,
alerts, references and reports routes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import HTTPException, Query, status
from pydantic import BeforeValidator

from api.errors import unprocessable
from schemas.events import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from schemas.times import assume_utc

_NUMBER = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")


def _not_a_number(value: object) -> object:
    """pydantic reads a bare number as unix time; the OpenAPI promises ISO 8601 date-times only."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
Since = Annotated[IsoDatetime | None, Query(description="inclusive, ISO 8601 (naive = UTC); before `until`, else 422")]
Until = Annotated[IsoDatetime | None, Query(description="exclusive, ISO 8601 (naive = UTC)")]


def storable(value: datetime) -> datetime:
    """``value`` in UTC, clamped into the storable range (compared before converting: a time such as
    9999-12-31T23:00-05:00 has no UTC datetime)."""
    value = assume_utc(value)
    if value < EARLIEST_TIMESTAMP:
        return EARLIEST_TIMESTAMP
    if value > LATEST_TIMESTAMP:
        return LATEST_TIMESTAMP
    return value.astimezone(UTC)


def storable_range(
    since: datetime | None, until: datetime | None, where: str = "query", names: tuple[str, str] = ("since", "until")
) -> tuple[datetime | None, datetime | None]:
    """422 unless ``since`` is before ``until`` (when both are given); then both bounds clamped."""
    if since and until and assume_utc(since) >= assume_utc(until):
        raise unprocessable([where, names[0]], f"'{names[0]}' must be before '{names[1]}'")
    return (storable(since) if since else None, storable(until) if until else None)


def check_moment(loc: list[str | int], value: datetime | None) -> None:
    """404 when nothing can be stored at ``value`` (outside 2000–2200 UTC), e.g. no window starts there."""
    if value is not None and not EARLIEST_TIMESTAMP <= assume_utc(value) < LATEST_TIMESTAMP:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"nothing is stored at {loc[-1]} {value.isoformat()}: only 2000 to 2200 UTC"
        )
