"""evidently's default choice of drift test for a column.

Mirrors ``legacy/calculations/stattests/registry.py::_get_default_stattest``
(called via ``get_stattest`` when DataDriftPreset gets no ``method``). ``n_values``
is the number of distinct non-missing values in reference and current *together*;
"small" means the reference has at most 1000 non-missing rows.

=========================  ==========================  ==========================
column                     reference <= 1000 rows      reference > 1000 rows
=========================  ==========================  ==========================
numeric, n_values > 5      ``ks`` (p <= 0.05)          ``wasserstein`` (>= 0.1)
numeric, 3..5 values       ``chisquare`` (p < 0.05)    ``jensenshannon`` (>= 0.1)
numeric, <= 2 values       ``z`` (p < 0.05)            ``jensenshannon`` (>= 0.1)
categorical, > 2 values    ``chisquare`` (p < 0.05)    ``jensenshannon`` (>= 0.1)
categorical, <= 2 values   ``z`` (p < 0.05)            ``jensenshannon`` (>= 0.1)
=========================  ==========================  ==========================
"""

from detectors.column_data import CategoricalData, NumericData
from detectors.evidently_defaults import BINARY_VALUES, FEW_VALUES, LARGE_REFERENCE_ROWS
from detectors.kinds import ColumnKind
from detectors.stattests.binning import union_keys
from detectors.stattests.chisquare import CHISQUARE
from detectors.stattests.jensenshannon import JENSENSHANNON
from detectors.stattests.ks import KS
from detectors.stattests.registry import ColumnData, StatTestSpec
from detectors.stattests.wasserstein import WASSERSTEIN
from detectors.stattests.z_test import Z_TEST


def default_stat_test(reference: ColumnData, current: ColumnData, column_kind: ColumnKind) -> StatTestSpec:
    """Pick the test evidently's DataDriftPreset would run on this column."""
    n_values = combined_unique_count(reference, current, cap=FEW_VALUES)
    if reference.n <= LARGE_REFERENCE_ROWS:
        if column_kind == "num" and n_values > FEW_VALUES:
            return KS
        return CHISQUARE if n_values > BINARY_VALUES else Z_TEST
    if column_kind == "num" and n_values > FEW_VALUES:
        return WASSERSTEIN
    return JENSENSHANNON


def combined_unique_count(reference: ColumnData, current: ColumnData, *, cap: int) -> int:
    """Distinct values across both samples, exact up to ``cap`` (anything above is ``cap + 1``).

    The cap is what keeps this O(1) for wide numeric columns: if either side alone
    has more than ``cap`` values the union does too, and otherwise both sides carry
    exact value counts.
    """
    if isinstance(reference, NumericData) and isinstance(current, NumericData):
        if reference.n_unique > cap or current.n_unique > cap:
            return cap + 1
        ref_counts, cur_counts = reference.value_counts(), current.value_counts()
    elif isinstance(reference, CategoricalData) and isinstance(current, CategoricalData):
        ref_counts, cur_counts = reference, current
    else:
        raise TypeError("reference and current must be prepared the same way")
    return min(len(union_keys(ref_counts, cur_counts)), cap + 1)


__all__ = ["combined_unique_count", "default_stat_test"]
