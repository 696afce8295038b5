"""Two-proportion Z-test for binary columns (evidently name ``z``).

Mirrors ``legacy/calculations/stattests/z_stattest.py``: values are sorted, the
first becomes 0 and every other value 1, and the pooled two-proportion z statistic
gives the two-sided p-value ``2 * (1 - Phi(|z|))``; drift when ``p < 0.05``. When
both samples hold one identical value the p-value is defined as 1. We keep
``1 - cdf`` (not ``sf``) so tiny p-values round to 0 exactly like evidently's.
"""

from typing import Any

import numpy as np
from scipy.stats import norm

from detectors.column_data import CategoricalData, NumericData
from detectors.stattests.binning import union_keys
from detectors.stattests.registry import ColumnData, StatTestSpec, register_stat_test


def z_p_value(reference: ColumnData, current: ColumnData) -> float:
    """evidently's ``_z_stat_test`` on value counts."""
    ref = reference.value_counts() if isinstance(reference, NumericData) else reference
    cur = current.value_counts() if isinstance(current, NumericData) else current
    if len(ref.keys) == 1 and len(cur.keys) == 1 and ref.keys[0] == cur.keys[0]:
        return 1.0
    first = _sorted_keys(ref, cur)[0]
    n1, n2 = ref.n, cur.n
    p1 = float(n1 - ref.as_dict().get(first, 0)) / n1
    p2 = float(n2 - cur.as_dict().get(first, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _sorted_keys(ref: CategoricalData, cur: CategoricalData) -> list[object]:
    """evidently sorts the union of values; mixed, unorderable types fall back to their repr."""
    keys: list[Any] = union_keys(ref, cur)  # orderable or not: only sorting tells (TypeError)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


Z_TEST = register_stat_test(
    StatTestSpec(
        name="z",
        display_name="Z-test p_value",
        column_kinds=frozenset({"cat"}),
        default_threshold=0.05,
        drift_rule="p_below",
        func=z_p_value,
    )
)

__all__ = ["Z_TEST", "z_p_value"]
