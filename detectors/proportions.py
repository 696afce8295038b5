"""Did a rate change? Two-proportion z-test, or Fisher's exact test for small counts.

Used for success/thumbs-up/refusal/error rates and, via :func:`accuracy_change`,
for accuracy. The pooled two-sided z-test (what ``statsmodels``'
``proportions_ztest`` computes) relies on the normal approximation, which is poor
when a 2x2 cell's *expected* count is below 5 -- the textbook rule -- so then we
switch to ``scipy.stats.fisher_exact`` (two-sided), which is exact at any size.

Effect sizes: ``difference = rate_cur - rate_ref`` (percentage points, easy to
alert on) and Cohen's ``h = 2*asin(sqrt(rate_cur)) - 2*asin(sqrt(rate_ref))``, which
puts changes near 0/1 and near 0.5 on one scale (|h| 0.2 small, 0.5 medium, 0.8 large).
"""

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import fisher_exact, norm

from detectors.kinds import ResultStatus

MIN_EXPECTED_CELL: float = 5.0


@dataclass(frozen=True, slots=True)
class ProportionChange:
    """Result of :func:`proportion_change`; sign of the effects: positive = current rate higher."""

    rate_ref: float
    rate_cur: float
    n_ref: int
    n_cur: int
    difference: float
    cohens_h: float
    p_value: float
    statistic: float | None
    test: Literal["two_proportion_z", "fisher_exact", "none"]
    status: ResultStatus = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def proportion_change(successes_ref: int, n_ref: int, successes_cur: int, n_cur: int) -> ProportionChange:
    """Compare ``successes_cur / n_cur`` with ``successes_ref / n_ref`` (two-sided).

    ``statistic`` is z for the z-test and the sample odds ratio for Fisher's test.
    With an empty side the result has ``status="insufficient_data"`` and NaNs.
    """
    for name, s, n in (("ref", successes_ref, n_ref), ("cur", successes_cur, n_cur)):
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"invalid counts for {name}: successes={s}, n={n}")
    if n_ref == 0 or n_cur == 0:
        nan = float("nan")
        return ProportionChange(nan, nan, n_ref, n_cur, nan, nan, nan, None, "none", "insufficient_data")
    rate_ref, rate_cur = successes_ref / n_ref, successes_cur / n_cur
    difference = rate_cur - rate_ref
    h = float(2 * np.arcsin(np.sqrt(rate_cur)) - 2 * np.arcsin(np.sqrt(rate_ref)))
    table = np.array([[successes_ref, n_ref - successes_ref], [successes_cur, n_cur - successes_cur]])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() < MIN_EXPECTED_CELL:
        result = fisher_exact(table, alternative="two-sided")
        return ProportionChange(
            rate_ref,
            rate_cur,
            n_ref,
            n_cur,
            difference,
            h,
            float(result.pvalue),
            float(result.statistic),
            "fisher_exact",
        )
    pooled = (successes_ref + successes_cur) / (n_ref + n_cur)
    z = (rate_cur - rate_ref) / np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    p_value = float(2 * norm.sf(abs(z)))
    return ProportionChange(rate_ref, rate_cur, n_ref, n_cur, difference, h, p_value, float(z), "two_proportion_z")


def accuracy_change(correct_ref: int, n_ref: int, correct_cur: int, n_cur: int) -> ProportionChange:
    """Accuracy change as a two-proportion test on correct-prediction counts.

    Thin alias of :func:`proportion_change` so alert configs can say what they test;
    get the counts from :func:`detectors.classification.classification_quality`.
    """
    return proportion_change(correct_ref, n_ref, correct_cur, n_cur)


__all__ = ["MIN_EXPECTED_CELL", "ProportionChange", "accuracy_change", "proportion_change"]
