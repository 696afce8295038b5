"""``Retry-After`` (RFC 9110 §10.2.3): how long a server asked us to wait, as seconds.

Stdlib only, so both the SDK's HTTP transport and the server's webhook sender use this one parser.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from loopwatch_sdk.times import assume_utc


def retry_after_seconds(value: str | None, *, cap: float = math.inf, now: datetime | None = None) -> float | None:
    """Seconds to wait from a header value, in ``[0, cap]``; ``None`` when absent or unreadable.

    Both forms count: delta-seconds (``"120"``; fractions are tolerated) and an HTTP-date (``"Wed, 21
    Oct 2015 07:28:00 GMT"``), measured from ``now`` (default: the current time). A date in the past is
    0. ``cap`` bounds what a receiver can make us wait, whatever it sends.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (assume_utc(when) - (now or datetime.now(UTC))).total_seconds()  # "-0000": UTC (RFC 5322)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)
