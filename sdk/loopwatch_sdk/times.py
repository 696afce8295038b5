"""One rule for time zones, everywhere: a naive datetime is UTC, and stored or compared times are UTC.

Clients send naive timestamps, ClickHouse (chDB) returns naive datetimes for UTC columns, and query
parameters arrive either way; each place that meets a datetime normalises it with these two.
"""

from __future__ import annotations

from datetime import UTC, datetime


def assume_utc(value: datetime) -> datetime:
    """Naive values are UTC; aware ones are kept in their own zone (comparisons need no conversion,
    which for times such as 9999-12-31T23:00-05:00 would overflow)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def as_utc(value: datetime) -> datetime:
    """Naive values are UTC; aware ones are converted to UTC (raises OverflowError past year 9999)."""
    return assume_utc(value).astimezone(UTC)
