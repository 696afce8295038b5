"""Latency percentiles and error rate of a window of calls.

Percentiles are ``numpy.percentile`` with its default ``method="linear"``: the value
at rank ``q/100 * (n - 1)`` of the sorted finite latencies, interpolating linearly
between neighbours (type 7 of Hyndman & Fan, the default of numpy, pandas and R).
It is stable for small windows, unlike nearest-rank; note that p99 of fewer than 100
calls is an interpolation towards the maximum, not an observed value.

Missing latencies (None/NaN) are excluded from percentiles but still count as calls.

Status -> error: integers (and numeric strings) are HTTP status codes, an error when
``>= 400`` or ``< 100`` (0 is what many clients report for "no response"); booleans
are success flags (``False`` = error); other strings are OK only if they are one of
:data:`OK_STATUSES` (case-insensitive) -- an unknown status is treated as an error
rather than silently hiding failures; ``None`` is "unknown" and not an error. Pass
``is_error`` to use another rule.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detectors.kinds import ArrayLike
from detectors.missing import as_array

OK_STATUSES: frozenset[str] = frozenset(
    {"ok", "success", "succeeded", "successful", "completed", "complete", "done", "unset"}
)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency distribution (ms) and error counts of one window; NaN latencies when none are known."""

    p50: float
    p95: float
    p99: float
    mean: float
    max: float
    count: int
    error_count: int
    error_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def is_error_status(status: object) -> bool:
    """Default status rule (see module docstring)."""
    if status is None:
        return False
    if isinstance(status, (bool, np.bool_)):
        return not bool(status)
    if isinstance(status, (int, np.integer)):
        return int(status) >= 400 or int(status) < 100
    if isinstance(status, str):
        text = status.strip()
        if text.isdigit():
            return is_error_status(int(text))
        return text.lower() not in OK_STATUSES
    return True


def latency_summary(
    latencies_ms: ArrayLike,
    statuses: Sequence[object] | None = None,
    *,
    is_error: Callable[[object], bool] = is_error_status,
) -> LatencySummary:
    """Summarise latencies (ms) and, if given, the calls' statuses (same length)."""
    raw = as_array(latencies_ms)
    values = (
        raw.astype(np.float64)
        if raw.dtype.kind in "fiub"
        else np.asarray([np.nan if v is None else float(v) for v in raw.tolist()], dtype=np.float64)
    )
    count = int(values.size)
    finite = values[np.isfinite(values)]
    if statuses is not None and len(statuses) != count:
        raise ValueError(f"{count} latencies but {len(statuses)} statuses")
    error_count = 0 if statuses is None else sum(1 for s in statuses if is_error(s))
    if finite.size:
        p50, p95, p99 = (float(v) for v in np.percentile(finite, [50, 95, 99]))
        mean, maximum = float(finite.mean()), float(finite.max())
    else:
        p50 = p95 = p99 = mean = maximum = float("nan")
    return LatencySummary(
        p50=p50,
        p95=p95,
        p99=p99,
        mean=mean,
        max=maximum,
        count=count,
        error_count=error_count,
        error_rate=error_count / count if count else float("nan"),
    )


__all__ = ["OK_STATUSES", "LatencySummary", "is_error_status", "latency_summary"]
