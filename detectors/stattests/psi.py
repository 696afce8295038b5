"""Population Stability Index (evidently name ``psi``).

Mirrors ``legacy/calculations/stattests/psi.py``: shares from
:func:`detectors.stattests.binning.binned_shares` with empty bins filled, then
``sum((ref - cur) * ln(ref / cur))``; drift when ``>= 0.1``. Not a default choice in
evidently's DataDriftPreset; available by name.
"""

import numpy as np

from detectors.stattests.binning import binned_shares
from detectors.stattests.registry import ColumnData, StatTestSpec, register_stat_test


def psi_value(reference: ColumnData, current: ColumnData) -> float:
    """PSI over evidently's binning (Sturges histogram or per-value shares)."""
    ref, cur = binned_shares(reference, current, fill_zeroes=True)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


PSI = register_stat_test(
    StatTestSpec(
        name="psi",
        display_name="PSI",
        column_kinds=frozenset({"num", "cat"}),
        default_threshold=0.1,
        drift_rule="at_or_above",
        func=psi_value,
    )
)

__all__ = ["PSI", "psi_value"]
