"""Jensen-Shannon distance (evidently name ``jensenshannon``).

Mirrors ``legacy/calculations/stattests/jensenshannon.py``: shares from
:func:`detectors.stattests.binning.binned_shares` **without** filling empty bins,
then ``scipy.spatial.distance.jensenshannon`` with the natural logarithm; drift
when ``>= 0.1``. evidently's default for categorical columns (and numeric columns
with <= 5 values) when the reference has more than 1000 rows.
"""

from scipy.spatial import distance

from detectors.stattests.binning import binned_shares
from detectors.stattests.registry import ColumnData, StatTestSpec, register_stat_test


def jensenshannon_value(reference: ColumnData, current: ColumnData) -> float:
    """Jensen-Shannon distance (square root of the divergence, base e)."""
    ref, cur = binned_shares(reference, current, fill_zeroes=False)
    return float(distance.jensenshannon(ref, cur))


JENSENSHANNON = register_stat_test(
    StatTestSpec(
        name="jensenshannon",
        display_name="Jensen-Shannon distance",
        column_kinds=frozenset({"num", "cat"}),
        default_threshold=0.1,
        drift_rule="at_or_above",
        func=jensenshannon_value,
    )
)

__all__ = ["JENSENSHANNON", "jensenshannon_value"]
