"""One rule for time zones, everywhere: a naive datetime is UTC, and stored or compared times are UTC.

Clients send naive timestamps, ClickHouse (chDB) returns naive datetimes for UTC columns, and query
parameters arrive either way; each place that meets a datetime normalises it with these two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError, ValidatorFunctionWrapHandler
from pydantic_core import PydanticCustomError


def assume_utc(value: datetime) -> datetime:
    """Naive values are UTC; aware ones are kept in their own zone (comparisons need no conversion,
    which for times such as 9999-12-31T23:00-05:00 would overflow)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def as_utc(value: datetime) -> datetime:
    """Naive values are UTC; aware ones are converted to UTC (raises OverflowError past year 9999)."""
    return assume_utc(value).astimezone(UTC)


def iso_8601(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A date-time pydantic cannot parse is refused with the format it takes and an example, instead
    of the parser's own words alone (``invalid character in year``)."""
    try:
        return handler(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if not error["type"].startswith("datetime"):
            raise
        reason = error["msg"].rpartition(", ")[2]  # the parser's words: "invalid character in year"
        raise PydanticCustomError(
            "datetime_parsing",
            "Input should be an ISO 8601 date-time such as 2026-12-07T13:00:00Z or 2026-12-07T14:00:00+01:00 "
            f"({reason})",
        ) from None
