"""Chi-square goodness-of-fit of current counts against reference proportions (``chisquare``).

Mirrors ``legacy/calculations/stattests/chisquare_stattest.py``: over the union of
values, expected counts are ``reference_count * n_current / n_reference`` and the
score is ``scipy.stats.chisquare(observed, expected).pvalue``; drift when
``p < 0.05``. A value that is absent from the reference has expected count 0, so the
statistic is infinite and the p-value 0 -- any brand-new category is flagged as
drift, exactly as in evidently (scipy's divide-by-zero warning is silenced).
"""

import warnings

import numpy as np
from scipy.stats import chisquare

from detectors.column_data import NumericData
from detectors.stattests.binning import aligned_counts
from detectors.stattests.registry import ColumnData, StatTestSpec, register_stat_test


def chisquare_p_value(reference: ColumnData, current: ColumnData) -> float:
    """p-value of Pearson's chi-square of current counts vs scaled reference counts."""
    ref = reference.value_counts() if isinstance(reference, NumericData) else reference
    cur = current.value_counts() if isinstance(current, NumericData) else current
    ref_counts, cur_counts = aligned_counts(ref, cur)
    expected = ref_counts * (cur.n / ref.n)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(chisquare(cur_counts, expected).pvalue)


CHISQUARE = register_stat_test(
    StatTestSpec(
        name="chisquare",
        display_name="chi-square p_value",
        column_kinds=frozenset({"cat"}),
        default_threshold=0.05,
        drift_rule="p_below",
        func=chisquare_p_value,
    )
)

__all__ = ["CHISQUARE", "chisquare_p_value"]
