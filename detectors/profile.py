"""Bounded, JSON-serialisable summaries of a reference dataset.

A streaming worker cannot hold a 10M-row reference per monitored column, so the
reference is summarised once and stored (e.g. one ClickHouse row per monitor):

* numeric columns keep exact whole-column statistics (rows, std, min, max, distinct
  count, and exact value counts when there are <= 20 distinct values) plus a sorted
  *quantile sample*: ``k`` order statistics taken at the mid-quantiles
  ``(i + 0.5) / k``. It is deterministic (no RNG, same input -> same profile) and,
  unlike a random sample, bounds the Wasserstein error by the quantile spacing.
  When the column has no more than ``sample_size`` values the sample *is* the
  column, so every test equals the raw-array result;
* categorical columns keep value counts of the ``max_categories`` most frequent
  values (ties broken by ``repr``) and fold the rest into ``__other__``; current
  data is then folded the same way (see :meth:`CategoricalReference.align_current`).

What stays exact with a truncated sample: test selection (it uses the exact row and
distinct counts), the Wasserstein norm (exact std), histogram edges (exact
min/max/n) and all per-value tests on low-cardinality columns. What becomes an
approximation: KS (only selected by default for references <= 1000 rows, which are
never truncated with the default cap), Wasserstein and histogram shares.

Column kinds are fixed when the profile is built (from ``column_types`` or
evidently's inference on the *reference*; evidently infers on the current data, so
pin ``column_types`` where that could differ, e.g. int columns near 10 values).
"""

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from detectors.column_data import CategoricalData, NumericData, categorical_data, numeric_data
from detectors.column_types import infer_column_type
from detectors.config import DEFAULT_PROFILE_CONFIG, OTHER_CATEGORY, ProfileConfig
from detectors.json_keys import decode_float, decode_key, encode_float, encode_key
from detectors.kinds import ArrayLike, ColumnKind
from detectors.missing import as_array

PROFILE_FORMAT_VERSION: int = 1


def quantile_sample(sorted_values: np.ndarray, size: int) -> np.ndarray:
    """Deterministic stratified sample: the order statistics at mid-quantiles ``(i + 0.5) / size``."""
    n = int(sorted_values.size)
    if n <= size:
        return sorted_values
    positions = ((np.arange(size, dtype=np.float64) + 0.5) * (n / size)).astype(np.int64)
    return sorted_values[positions]


@dataclass(frozen=True, slots=True)
class NumericReference:
    """Summary of one numeric reference column (see module docstring)."""

    n: int
    n_missing: int
    mean: float
    std: float
    minimum: float
    maximum: float
    n_unique: int
    integer_valued: bool
    sample: np.ndarray
    value_counts: CategoricalData | None
    kind: Literal["num"] = field(default="num", init=False)

    @classmethod
    def from_values(
        cls, values: ArrayLike, sample_size: int = DEFAULT_PROFILE_CONFIG.sample_size
    ) -> "NumericReference":
        """Summarise a raw numeric column."""
        arr = as_array(values)
        data = numeric_data(arr)
        return cls(
            n=data.n,
            n_missing=int(arr.size) - data.n,
            mean=float(np.mean(data.sorted_values)) if data.n else float("nan"),
            std=data.std,
            minimum=data.minimum,
            maximum=data.maximum,
            n_unique=data.n_unique,
            integer_valued=data.integer_valued,
            sample=quantile_sample(data.sorted_values, sample_size),
            value_counts=data.counts,
        )

    def column_data(self) -> NumericData:
        """Prepared data for the stat tests."""
        return NumericData(
            sorted_values=self.sample,
            n=self.n,
            std=self.std,
            minimum=self.minimum,
            maximum=self.maximum,
            n_unique=self.n_unique,
            counts=self.value_counts,
            integer_valued=self.integer_valued,
        )

    def align_current(self, current: NumericData | CategoricalData) -> NumericData | CategoricalData:
        """Numeric values need no mapping."""
        return current

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats exact via repr round-trip)."""
        return {
            "kind": "num",
            "n": self.n,
            "n_missing": self.n_missing,
            "mean": encode_float(self.mean),
            "std": encode_float(self.std),
            "min": encode_float(self.minimum),
            "max": encode_float(self.maximum),
            "n_unique": self.n_unique,
            "integer_valued": self.integer_valued,
            "sample": self.sample.tolist(),
            "value_counts": _encode_counts(self.value_counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NumericReference":
        """Inverse of :meth:`to_dict`."""
        return cls(
            n=int(data["n"]),
            n_missing=int(data["n_missing"]),
            mean=decode_float(data["mean"]),
            std=decode_float(data["std"]),
            minimum=decode_float(data["min"]),
            maximum=decode_float(data["max"]),
            n_unique=int(data["n_unique"]),
            integer_valued=bool(data["integer_valued"]),
            sample=np.asarray(data["sample"], dtype=np.float64),
            value_counts=_decode_counts(data["value_counts"]),
        )


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    """Value counts of one categorical reference column, capped at ``max_categories``."""

    counts: CategoricalData
    n_missing: int
    truncated: bool
    kind: Literal["cat"] = field(default="cat", init=False)

    @property
    def n(self) -> int:
        """Non-missing reference rows."""
        return self.counts.n

    @classmethod
    def from_values(
        cls, values: ArrayLike, max_categories: int = DEFAULT_PROFILE_CONFIG.max_categories
    ) -> "CategoricalReference":
        """Summarise a raw categorical column."""
        arr = as_array(values)
        data = categorical_data(arr)
        counts, truncated = cap_categories(data, max_categories)
        return cls(counts=counts, n_missing=int(arr.size) - data.n, truncated=truncated)

    def column_data(self) -> CategoricalData:
        """Prepared data for the stat tests."""
        return self.counts

    def align_current(self, current: NumericData | CategoricalData) -> NumericData | CategoricalData:
        """Fold current categories the profile did not keep into ``__other__`` (only if truncated)."""
        if not self.truncated or not isinstance(current, CategoricalData):
            return current
        kept = set(self.counts.keys)
        folded: Counter[Hashable] = Counter()
        for key, count in current.as_dict().items():
            folded[key if key in kept else OTHER_CATEGORY] += count
        return CategoricalData.from_mapping(folded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "kind": "cat",
            "n_missing": self.n_missing,
            "truncated": self.truncated,
            "value_counts": _encode_counts(self.counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CategoricalReference":
        """Inverse of :meth:`to_dict`."""
        counts = _decode_counts(data["value_counts"])
        assert counts is not None
        return cls(counts=counts, n_missing=int(data["n_missing"]), truncated=bool(data["truncated"]))


def cap_categories(data: CategoricalData, max_categories: int) -> tuple[CategoricalData, bool]:
    """Keep the ``max_categories`` most frequent keys, fold the rest into ``__other__``."""
    if len(data.keys) <= max_categories:
        return data, False
    ranked = sorted(zip(data.keys, data.counts.tolist(), strict=True), key=lambda kc: (-kc[1], repr(kc[0])))
    kept = ranked[: max_categories - 1] if max_categories > 1 else []
    other = sum(count for _, count in ranked[len(kept) :])
    folded = dict(kept)
    folded[OTHER_CATEGORY] = folded.get(OTHER_CATEGORY, 0) + other
    return CategoricalData.from_mapping(folded), True


ReferenceColumn = NumericReference | CategoricalReference


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """Bounded summary of a whole reference dataset; pass it to ``dataset_drift`` as the reference."""

    columns: Mapping[str, ReferenceColumn]
    config: ProfileConfig = DEFAULT_PROFILE_CONFIG
    skipped: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        reference: Mapping[str, ArrayLike],
        *,
        column_types: Mapping[str, ColumnKind] | None = None,
        config: ProfileConfig = DEFAULT_PROFILE_CONFIG,
    ) -> "ReferenceProfile":
        """Summarise every column of a mapping of arrays (dict or pandas DataFrame)."""
        types = column_types or {}
        columns: dict[str, ReferenceColumn] = {}
        skipped: dict[str, str] = {}
        for name in list(reference.keys()):
            values = reference[name]
            kind = types.get(name) or infer_column_type(values)
            if kind == "num":
                columns[name] = NumericReference.from_values(values, config.sample_size)
            elif kind == "cat":
                columns[name] = CategoricalReference.from_values(values, config.max_categories)
            else:
                skipped[name] = f"column type {kind!r} is not drift-tested"
        return cls(columns=columns, config=config, skipped=skipped)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``json.dumps(profile.to_dict())`` is the storage format."""
        return {
            "version": PROFILE_FORMAT_VERSION,
            "config": {"sample_size": self.config.sample_size, "max_categories": self.config.max_categories},
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReferenceProfile":
        """Inverse of :meth:`to_dict`; rejects unknown format versions."""
        if data.get("version") != PROFILE_FORMAT_VERSION:
            raise ValueError(f"unsupported profile version {data.get('version')!r}")
        columns: dict[str, ReferenceColumn] = {}
        for name, col in data["columns"].items():
            if col["kind"] == "num":
                columns[name] = NumericReference.from_dict(col)
            elif col["kind"] == "cat":
                columns[name] = CategoricalReference.from_dict(col)
            else:
                raise ValueError(f"unknown column kind {col['kind']!r} for {name!r}")
        return cls(columns=columns, config=ProfileConfig(**data["config"]), skipped=dict(data.get("skipped", {})))


def _encode_counts(counts: CategoricalData | None) -> list[list[Any]] | None:
    if counts is None:
        return None
    return [[encode_key(k), c] for k, c in zip(counts.keys, counts.counts.tolist(), strict=True)]


def _decode_counts(items: list[list[Any]] | None) -> CategoricalData | None:
    if items is None:
        return None
    return CategoricalData(
        tuple(decode_key(k) for k, _ in items), np.asarray([int(c) for _, c in items], dtype=np.int64)
    )


__all__ = [
    "PROFILE_FORMAT_VERSION",
    "CategoricalReference",
    "NumericReference",
    "ReferenceColumn",
    "ReferenceProfile",
    "cap_categories",
    "quantile_sample",
]
