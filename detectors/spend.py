"""Is today's spend unusual? Robust z-score against recent history.

Spend series are spiky and a single incident inflates mean and standard deviation,
hiding the next one, so the rule uses median and MAD (Iglewicz & Hoaglin's modified
z-score)::

    z = 0.6745 * (current - median(history)) / MAD,   MAD = median(|history - median|)

0.6745 makes MAD comparable to a standard deviation for normal data, so ``|z| > 3``
means "about 3 sigma away". The spend is anomalous when ``|z| > z`` (default 3.0);
``direction`` says whether it is a spike (``up``) or a drop (``down`` -- often a
broken pipeline rather than savings).

When more than half of the history is identical, MAD is 0; then the scale falls back
to ``1.2533 * mean(|history - median|)`` (the mean absolute deviation, scaled to a
standard deviation). If that is 0 too (perfectly flat history) any different value
has infinite z and is anomalous, and the same value has z = 0. With fewer than
``min_history`` finite points the status is ``insufficient_data`` and nothing is
flagged.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from detectors.kinds import ResultStatus

MAD_TO_SIGMA: float = 0.6745
MEAN_AD_TO_SIGMA: float = 1.253314


@dataclass(frozen=True, slots=True)
class SpendAnomaly:
    """Outcome of :func:`spend_anomaly`."""

    current: float
    median: float
    scale: float
    robust_z: float
    threshold: float
    is_anomaly: bool
    direction: Literal["up", "down"] | None
    n_history: int
    scale_method: Literal["mad", "mean_ad", "none"]
    status: ResultStatus = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def spend_anomaly(history: Sequence[float], current: float, *, min_history: int = 3, z: float = 3.0) -> SpendAnomaly:
    """Score ``current`` against ``history`` (non-finite history values are ignored)."""
    values = np.asarray(history, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = int(values.size)
    current = float(current)
    if n < max(min_history, 1) or not np.isfinite(current):
        nan = float("nan")
        return SpendAnomaly(current, nan, nan, nan, z, False, None, n, "none", "insufficient_data")
    median = float(np.median(values))
    deviations = np.abs(values - median)
    mad = float(np.median(deviations))
    deviation = current - median
    method: Literal["mad", "mean_ad", "none"]
    if mad > 0:
        scale, method, robust_z = mad, "mad", MAD_TO_SIGMA * deviation / mad
    else:
        mean_ad = float(deviations.mean())
        if mean_ad > 0:
            scale, method, robust_z = mean_ad, "mean_ad", deviation / (MEAN_AD_TO_SIGMA * mean_ad)
        else:
            scale, method = 0.0, "none"
            robust_z = 0.0 if deviation == 0 else float(np.copysign(np.inf, deviation))
    is_anomaly = bool(abs(robust_z) > z)
    direction: Literal["up", "down"] | None = None
    if is_anomaly:
        direction = "up" if robust_z > 0 else "down"
    return SpendAnomaly(current, median, scale, float(robust_z), z, is_anomaly, direction, n, method)


__all__ = ["MAD_TO_SIGMA", "MEAN_AD_TO_SIGMA", "SpendAnomaly", "spend_anomaly"]
