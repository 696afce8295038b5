"""Did ratings or evaluator scores shift? Two-sided Mann-Whitney U with rank-biserial effect.

Ratings (1-5 stars, thumbs as 0/1) and LLM-judge scores are ordinal, bounded and
heavily tied, so a t-test's normality assumption does not hold; Mann-Whitney U
compares the whole distributions by ranks. ``scipy.stats.mannwhitneyu`` with
``alternative="two-sided"`` and its default ``method="auto"`` (exact for small
samples without ties, otherwise the normal approximation with tie correction and
continuity correction) is used as-is.

Effect size: rank-biserial correlation ``r = 2*U_cur / (n_cur*n_ref) - 1`` in
[-1, 1]: the probability that a random current score beats a random reference score
minus the reverse. Positive = current higher. Unlike the p-value it does not grow
with traffic, so alert on both.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from detectors.kinds import ArrayLike, ResultStatus
from detectors.missing import as_array, drop_missing


@dataclass(frozen=True, slots=True)
class RankChange:
    """Result of :func:`ratings_change` / :func:`score_change`."""

    n_ref: int
    n_cur: int
    mean_ref: float
    mean_cur: float
    median_ref: float
    median_cur: float
    u_statistic: float
    p_value: float
    rank_biserial: float
    test: str = "mann_whitney_u"
    status: ResultStatus = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def ratings_change(reference: ArrayLike, current: ArrayLike) -> RankChange:
    """Two-sided Mann-Whitney U of current vs reference ratings (missing values dropped).

    ``u_statistic`` is U of the *current* sample. Empty side -> ``insufficient_data``.
    """
    ref = drop_missing(as_array(reference).astype(np.float64))
    cur = drop_missing(as_array(current).astype(np.float64))
    n_ref, n_cur = int(ref.size), int(cur.size)
    if n_ref == 0 or n_cur == 0:
        nan = float("nan")
        return RankChange(n_ref, n_cur, nan, nan, nan, nan, nan, nan, nan, status="insufficient_data")
    result = mannwhitneyu(cur, ref, alternative="two-sided")
    u_cur = float(result.statistic)
    return RankChange(
        n_ref=n_ref,
        n_cur=n_cur,
        mean_ref=float(ref.mean()),
        mean_cur=float(cur.mean()),
        median_ref=float(np.median(ref)),
        median_cur=float(np.median(cur)),
        u_statistic=u_cur,
        p_value=float(result.pvalue),
        rank_biserial=2.0 * u_cur / (n_cur * n_ref) - 1.0,
    )


def score_change(reference: ArrayLike, current: ArrayLike) -> RankChange:
    """Evaluator-score shift; the same test as :func:`ratings_change` (scores are ordinal too)."""
    return ratings_change(reference, current)


__all__ = ["RankChange", "ratings_change", "score_change"]
