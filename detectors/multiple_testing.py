"""Multiple-testing corrections for p-values from many columns.

Testing 50 columns at alpha=0.05 flags ~2.5 columns on identical data by chance;
these adjust the p-values so the family-wise error (Bonferroni, Holm) or the false
discovery rate (Benjamini-Hochberg) is controlled instead. Adjusted values follow
the usual definitions (as in ``statsmodels.stats.multitest.multipletests``) and are
capped at 1. evidently applies no correction; ``"none"`` is the default.
"""

import numpy as np

from detectors.kinds import Correction


def adjust_p_values(p_values: np.ndarray, correction: Correction) -> np.ndarray:
    """Return adjusted p-values in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if correction == "none" or m == 0:
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if correction == "holm":
        # step-down: max over k<=i of (m - k) * p_(k)
        stepped = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif correction == "fdr_bh":
        # step-up: min over k>=i of m / k * p_(k)
        stepped = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {correction!r}")
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


__all__ = ["adjust_p_values"]
