"""Two-sample Kolmogorov-Smirnov test (evidently name ``ks``).

Mirrors ``legacy/calculations/stattests/ks_stattest.py``: the score is the two-sided
p-value of ``scipy.stats.ks_2samp`` with its default ``method="auto"`` (exact for
samples up to 10,000, asymptotic above) and drift is ``p <= threshold`` (0.05).
evidently's default picks it for numeric columns with more than 5 distinct values
when the reference has at most 1000 rows.
"""

from scipy.stats import ks_2samp

from detectors.column_data import NumericData
from detectors.stattests.registry import ColumnData, StatTestSpec, register_stat_test


def ks_p_value(reference: ColumnData, current: ColumnData) -> float:
    """Two-sided KS p-value; the inputs are already sorted, which ks_2samp accepts as-is."""
    if not isinstance(reference, NumericData) or not isinstance(current, NumericData):
        raise TypeError("ks needs numeric data")
    return float(ks_2samp(reference.sorted_values, current.sorted_values).pvalue)


KS = register_stat_test(
    StatTestSpec(
        name="ks",
        display_name="K-S p_value",
        column_kinds=frozenset({"num"}),
        default_threshold=0.05,
        drift_rule="p_at_or_below",
        func=ks_p_value,
    )
)

__all__ = ["KS", "ks_p_value"]
