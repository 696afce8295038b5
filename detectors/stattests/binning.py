"""Turning two columns into comparable share vectors for PSI and Jensen-Shannon.

Mirrors ``legacy/calculations/stattests/utils.py::get_binned_data`` in evidently
0.7.23 -- note it does **not** use reference quantiles nor the ``n_bins=30`` argument
its callers pass:

* numerical data whose *reference* has more than 20 distinct values is histogrammed
  with ``np.histogram_bin_edges(concat(reference, current), bins="sturges")``, i.e.
  equal-width bins over the combined range, ``ceil(log2(n_ref + n_cur) + 1)`` of them;
* everything else (categorical, or numeric with <= 20 reference values) compares
  per-value shares over the union of values seen in either sample;
* with ``fill_zeroes`` (PSI only) empty shares become ``0.0001``, or
  ``min_nonzero / 1e6`` when the smallest non-empty share is ``<= 0.0001``.

Sturges edges are recomputed from (min, max, n) instead of concatenating, which is
what allows binning against a bounded reference profile; counts use ``searchsorted``
on the already-sorted values with the same half-open bins as ``np.histogram``.
"""

from collections.abc import Hashable

import numpy as np

from detectors.column_data import CategoricalData, NumericData
from detectors.evidently_defaults import HISTOGRAM_MIN_UNIQUE, PSI_EMPTY_BIN_DIVISOR, PSI_EMPTY_BIN_FLOOR


def binned_shares(
    reference: NumericData | CategoricalData,
    current: NumericData | CategoricalData,
    *,
    fill_zeroes: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(reference_shares, current_shares)`` exactly as evidently bins them."""
    if isinstance(reference, NumericData) and isinstance(current, NumericData):
        if reference.n_unique > HISTOGRAM_MIN_UNIQUE:
            ref_shares, cur_shares = _histogram_shares(reference, current)
        else:
            ref_shares, cur_shares = count_shares(reference.value_counts(), current.value_counts())
    elif isinstance(reference, CategoricalData) and isinstance(current, CategoricalData):
        ref_shares, cur_shares = count_shares(reference, current)
    else:
        raise TypeError("reference and current must be prepared the same way (both numeric or both categorical)")
    if fill_zeroes:
        ref_shares = fill_empty_shares(ref_shares)
        cur_shares = fill_empty_shares(cur_shares)
    return ref_shares, cur_shares


def union_keys(reference: CategoricalData, current: CategoricalData) -> list[Hashable]:
    """Values seen in either sample (evidently builds the same set, order is irrelevant)."""
    seen = dict.fromkeys(reference.keys)
    seen.update(dict.fromkeys(current.keys))
    return list(seen)


def aligned_counts(reference: CategoricalData, current: CategoricalData) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples over :func:`union_keys`, zero where a value is absent."""
    keys = union_keys(reference, current)
    ref_map = reference.as_dict()
    cur_map = current.as_dict()
    ref_counts = np.asarray([ref_map.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.asarray([cur_map.get(k, 0) for k in keys], dtype=np.float64)
    return ref_counts, cur_counts


def count_shares(reference: CategoricalData, current: CategoricalData) -> tuple[np.ndarray, np.ndarray]:
    """Per-value shares over the union of values."""
    ref_counts, cur_counts = aligned_counts(reference, current)
    return ref_counts / reference.n, cur_counts / current.n


def sturges_edges(minimum: float, maximum: float, n: int, integer_valued: bool = False) -> np.ndarray:
    """``np.histogram_bin_edges(data, bins="sturges")`` from the data's min, max and size.

    Reproduces numpy's ``_get_outer_edges`` (+/-0.5 for a degenerate range), the
    Sturges width ``ptp / (log2(n) + 1)``, numpy's integer rule (width at least 1 for
    integer data) and ``n_bins = ceil((last - first) / width)``.
    """
    first, last = float(minimum), float(maximum)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (float(maximum) - float(minimum)) / (np.log2(n) + 1.0)
    if width:
        if integer_valued and width < 1:
            width = 1.0
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def histogram_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(values, edges)[0]`` for already-sorted values.

    Bins are ``[e_i, e_{i+1})`` except the last, which also includes its right edge;
    values outside ``[e_0, e_-1]`` are ignored -- the same rules as ``np.histogram``.
    """
    left = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(left)
    counts[-1] += int(np.searchsorted(sorted_values, edges[-1], side="right") - left[-1])
    return counts


def _histogram_shares(reference: NumericData, current: NumericData) -> tuple[np.ndarray, np.ndarray]:
    edges = sturges_edges(
        min(reference.minimum, current.minimum),
        max(reference.maximum, current.maximum),
        reference.n + current.n,
        integer_valued=reference.integer_valued and current.integer_valued,
    )
    return _bin_shares(reference, edges), _bin_shares(current, edges)


def _bin_shares(data: NumericData, edges: np.ndarray) -> np.ndarray:
    """Exact histogram shares for whole columns; for samples, shares of an interpolated CDF.

    Counting a bounded sample puts all of a thin tail bin's mass on 0 or 1/k, which
    PSI's log ratio amplifies. For sampled columns the i-th sorted value is instead
    treated as the ``(i + 0.5) / k`` quantile, the CDF is interpolated linearly between
    them (anchored at the exact min -> 0 and max -> 1) and bin shares are CDF
    differences. Unsampled columns are counted exactly, as evidently does.
    """
    values = data.sorted_values
    if not data.is_sample:
        return histogram_counts(values, edges) / values.size
    k = values.size
    knots = np.concatenate(([data.minimum], values, [data.maximum]))
    levels = np.concatenate(([0.0], (np.arange(k) + 0.5) / k, [1.0]))
    cdf = np.interp(edges, knots, levels)
    return np.diff(cdf)


def fill_empty_shares(shares: np.ndarray) -> np.ndarray:
    """evidently's ``np.place`` rule for empty bins (see module docstring)."""
    empty = shares == 0
    if not empty.any():
        return shares
    smallest = float(shares[~empty].min())
    filler = smallest / PSI_EMPTY_BIN_DIVISOR if smallest <= PSI_EMPTY_BIN_FLOOR else PSI_EMPTY_BIN_FLOOR
    filled = shares.copy()
    filled[empty] = filler
    return filled


__all__ = [
    "aligned_counts",
    "binned_shares",
    "count_shares",
    "fill_empty_shares",
    "histogram_counts",
    "sturges_edges",
    "union_keys",
]
