"""Prepared column representations that every drift statistic consumes.

Tests never see raw arrays: they get either :class:`NumericData` (sorted finite
values plus exact whole-column statistics) or :class:`CategoricalData` (value
counts). Raw arrays and :class:`~detectors.profile.ReferenceProfile` columns both
convert to these, which is what lets
drift against a bounded profile reuse exactly the same code as drift against raw
data. Sorting once here is also the main speed trick: KS, Wasserstein and the
histogram binning all work on the sorted array without re-sorting.
"""

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from detectors.evidently_defaults import HISTOGRAM_MIN_UNIQUE
from detectors.missing import drop_missing

SMALL_CARDINALITY: int = HISTOGRAM_MIN_UNIQUE
"""Exact value counts are kept for numeric data with at most this many distinct
values: enough for every evidently rule that looks at distinct values
(``<= 2``, ``<= 5`` and ``> 20``)."""


@dataclass(frozen=True, slots=True)
class CategoricalData:
    """Value counts of one column (missing values already dropped).

    ``n`` is always ``counts.sum()``: evidently normalises by ``len(series)`` after
    ``dropna`` which is the same number, and for sampled data it keeps shares and
    chi-square expectations consistent with the counts actually held.
    """

    keys: tuple[Hashable, ...]
    counts: np.ndarray
    n: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", int(self.counts.sum()))

    def as_dict(self) -> dict[Hashable, int]:
        """Mapping key -> count, in key order."""
        return dict(zip(self.keys, self.counts.tolist(), strict=True))

    @classmethod
    def from_mapping(cls, counts: Mapping[Hashable, int]) -> "CategoricalData":
        """Build from ``{key: count}`` dropping zero counts."""
        items = [(k, int(c)) for k, c in counts.items() if c > 0]
        return cls(tuple(k for k, _ in items), np.asarray([c for _, c in items], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class NumericData:
    """One numeric column ready for testing.

    ``sorted_values`` may be a bounded sample of the column (profiles, windows);
    ``n``, ``std``, ``minimum``, ``maximum`` and ``n_unique`` always describe the
    whole column so test selection, the Wasserstein norm and histogram edges match
    what evidently would compute on the full data. ``counts`` holds exact value
    counts when ``n_unique <= SMALL_CARDINALITY`` so the per-value tests (chi-square,
    Z, PSI/JS on few values) stay exact even when values are sampled.
    ``n_unique`` is exact up to ``SMALL_CARDINALITY``; above it, any larger number.
    """

    sorted_values: np.ndarray
    n: int
    std: float
    minimum: float
    maximum: float
    n_unique: int
    counts: CategoricalData | None
    integer_valued: bool = False

    @property
    def is_sample(self) -> bool:
        """True when ``sorted_values`` holds fewer points than the column had."""
        return int(self.sorted_values.size) < self.n

    def value_counts(self) -> CategoricalData:
        """Exact counts when known, else counts of the held (possibly sampled) values."""
        return self.counts if self.counts is not None else _run_length_counts(self.sorted_values)


def numeric_data(values: np.ndarray) -> NumericData:
    """Prepare a raw numeric array: drop missing, sort once, compute whole-column stats.

    ``std`` is the population std (``ddof=0``) because evidently calls ``np.std`` on a
    Series, which pandas evaluates with ``ddof=0``.
    """
    if values.dtype.kind not in "fiub":
        raise ValueError(f"numeric column expected, got dtype {values.dtype}")
    integer_valued = values.dtype.kind in "iu"
    clean = drop_missing(values).astype(np.float64, copy=False)
    ordered = np.sort(clean)
    if ordered.size == 0:
        return NumericData(ordered, 0, float("nan"), float("nan"), float("nan"), 0, None, integer_valued)
    n_unique = int(np.count_nonzero(np.diff(ordered))) + 1
    counts = _run_length_counts(ordered) if n_unique <= SMALL_CARDINALITY else None
    return NumericData(
        sorted_values=ordered,
        n=int(ordered.size),
        std=float(np.std(ordered)),
        minimum=float(ordered[0]),
        maximum=float(ordered[-1]),
        n_unique=n_unique,
        counts=counts,
        integer_valued=integer_valued,
    )


def categorical_data(values: np.ndarray) -> CategoricalData:
    """Count values after dropping missing ones (evidently: ``series.value_counts()``).

    Keys are plain Python scalars so ``1``, ``1.0`` and ``True`` collide exactly as in
    a pandas/dict lookup and results stay JSON-friendly.
    """
    clean = drop_missing(values)
    if clean.dtype.kind in "iubfUS":
        keys, counts = np.unique(clean, return_counts=True)
        return CategoricalData(tuple(keys.tolist()), counts.astype(np.int64))
    counter = Counter(clean.tolist())
    return CategoricalData.from_mapping(counter)


def _run_length_counts(ordered: np.ndarray) -> CategoricalData:
    """Value counts of a sorted float array via run lengths (O(n), no hashing)."""
    if ordered.size == 0:
        return CategoricalData((), np.zeros(0, dtype=np.int64))
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, ordered.size)).astype(np.int64)
    return CategoricalData(tuple(ordered[starts].tolist()), counts)


__all__ = [
    "SMALL_CARDINALITY",
    "CategoricalData",
    "NumericData",
    "categorical_data",
    "numeric_data",
]
