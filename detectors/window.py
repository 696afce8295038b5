"""Bounded summary of the *current* window for streaming workers.

A worker sees events one batch at a time and must not keep the window's raw values.
:class:`WindowSample` keeps:

* numeric: a uniform reservoir sample (Vitter's algorithm R, vectorised per batch,
  seeded) of at most ``capacity`` values, plus exact count, missing count, min, max,
  mean/std (Chan's parallel update) and exact value counts while the column has at
  most 20 distinct values -- so test selection and per-value tests stay exact;
* categorical: exact value counts for the first ``max_categories`` distinct values,
  later new values counted under ``__other__``.

It converts to the same prepared data as a raw array, so ``column_drift(profile_col,
window)`` works unchanged. With fewer than ``capacity`` values the reservoir holds
every value and drift equals drift on the raw window. Note that p-value tests (KS)
on a sampled window use the sample size, i.e. they lose some power; distances are
unaffected in expectation.
"""

from collections.abc import Hashable, Mapping
from typing import Any, cast

import numpy as np

from detectors.column_data import SMALL_CARDINALITY, CategoricalData, NumericData, categorical_data
from detectors.config import DEFAULT_WINDOW_CONFIG, OTHER_CATEGORY, WindowConfig
from detectors.json_keys import decode_float, decode_key, encode_float, encode_key
from detectors.kinds import ArrayLike, ColumnKind
from detectors.missing import as_array, drop_missing


class WindowSample:
    """Reservoir / bounded counts for one column of the current window."""

    def __init__(self, kind: ColumnKind = "num", config: WindowConfig = DEFAULT_WINDOW_CONFIG) -> None:
        if kind not in ("num", "cat"):
            raise ValueError(f"kind must be 'num' or 'cat', got {kind!r}")
        self._kind: ColumnKind = kind
        self._config = config
        self.reset()

    @property
    def kind(self) -> ColumnKind:
        """``num`` or ``cat``."""
        return self._kind

    @property
    def config(self) -> WindowConfig:
        """Bounds and seed."""
        return self._config

    @property
    def n(self) -> int:
        """Non-missing values seen since the last reset."""
        return self._seen

    @property
    def n_missing(self) -> int:
        """Missing values (None/NaN/inf) seen since the last reset."""
        return self._missing

    def reset(self) -> None:
        """Start a new window (the RNG restarts from the seed too, for reproducibility)."""
        self._rng = np.random.default_rng(self._config.seed)
        self._seen = 0
        self._missing = 0
        self._reservoir = np.empty(0, dtype=np.float64)
        self._minimum = float("inf")
        self._maximum = float("-inf")
        self._mean = 0.0
        self._m2 = 0.0
        self._integer_valued = True
        self._small_counts: dict[float, int] | None = {}
        self._counts: dict[Hashable, int] = {}

    def add(self, values: ArrayLike) -> None:
        """Add a batch of values (missing ones are only counted)."""
        arr = as_array(values)
        clean = drop_missing(arr)
        self._missing += int(arr.size - clean.size)
        if clean.size == 0:
            return
        if self._kind == "num":
            if clean.dtype.kind not in "fiub":
                raise ValueError(f"numeric window got dtype {clean.dtype}")
            self._add_numeric(clean)
        else:
            self._add_categorical(clean)

    def _add_numeric(self, clean: np.ndarray) -> None:
        self._integer_valued = self._integer_valued and clean.dtype.kind in "iu"
        x = clean.astype(np.float64, copy=False)
        self._update_moments(x)
        self._update_small_counts(x)
        self._update_reservoir(x)
        self._seen += int(x.size)

    def _update_moments(self, x: np.ndarray) -> None:
        """Chan et al. pairwise update of count, mean and M2 (exact-enough std, no raw data)."""
        n_a, n_b = self._seen, int(x.size)
        mean_b = float(np.mean(x))
        m2_b = float(np.sum((x - mean_b) ** 2))
        delta = mean_b - self._mean
        total = n_a + n_b
        self._mean += delta * n_b / total
        self._m2 += m2_b + delta * delta * n_a * n_b / total
        self._minimum = min(self._minimum, float(x.min()))
        self._maximum = max(self._maximum, float(x.max()))

    def _update_small_counts(self, x: np.ndarray) -> None:
        if self._small_counts is None:
            return
        keys, counts = np.unique(x, return_counts=True)
        merged = dict(self._small_counts)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            merged[key] = merged.get(key, 0) + count
            if len(merged) > SMALL_CARDINALITY:
                self._small_counts = None
                return
        self._small_counts = merged

    def _update_reservoir(self, x: np.ndarray) -> None:
        """Algorithm R: item number ``i`` replaces a uniform slot in ``[0, i)`` if that slot < capacity."""
        capacity = self._config.capacity
        seen = self._seen  # values before this batch; the reservoir holds min(seen, capacity)
        room = capacity - int(self._reservoir.size)
        if room > 0:
            take = min(room, int(x.size))
            self._reservoir = np.concatenate((self._reservoir, x[:take]))
            x = x[take:]
            seen += take
        if x.size == 0:
            return
        numbers = np.arange(seen + 1, seen + 1 + x.size, dtype=np.int64)
        slots = self._rng.integers(0, numbers)
        accepted = np.flatnonzero(slots < capacity)
        if accepted.size == 0:
            return
        # Sequentially, later items overwrite earlier ones in the same slot: keep the last.
        rev = accepted[::-1]
        uniq_slots, first_in_rev = np.unique(slots[rev], return_index=True)
        self._reservoir[uniq_slots] = x[rev[first_in_rev]]

    def _add_categorical(self, clean: np.ndarray) -> None:
        batch = categorical_data(clean)
        limit = self._config.max_categories
        counts = self._counts
        for key, count in zip(batch.keys, batch.counts.tolist(), strict=True):
            if key in counts:
                counts[key] += count
            elif len(counts) < limit:
                counts[key] = count
            else:
                counts[OTHER_CATEGORY] = counts.get(OTHER_CATEGORY, 0) + count
        self._seen += batch.n

    def column_data(self) -> NumericData | CategoricalData:
        """Prepared data for the stat tests (see module docstring for what is exact)."""
        if self._kind == "cat":
            return CategoricalData.from_mapping(self._counts)
        if self._seen == 0:
            empty = np.empty(0, dtype=np.float64)
            return NumericData(empty, 0, float("nan"), float("nan"), float("nan"), 0, None, self._integer_valued)
        small = self._small_counts
        counts = CategoricalData.from_mapping(dict(sorted(small.items()))) if small is not None else None
        return NumericData(
            sorted_values=np.sort(self._reservoir),
            n=self._seen,
            std=float(np.sqrt(self._m2 / self._seen)),
            minimum=self._minimum,
            maximum=self._maximum,
            n_unique=len(small) if small is not None else SMALL_CARDINALITY + 1,
            counts=counts,
            integer_valued=self._integer_valued,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready checkpoint, including the RNG state so a restored worker continues identically."""
        return {
            "kind": self._kind,
            "config": {
                "capacity": self._config.capacity,
                "max_categories": self._config.max_categories,
                "seed": self._config.seed,
            },
            "rng_state": self._rng.bit_generator.state,
            "seen": self._seen,
            "missing": self._missing,
            "reservoir": self._reservoir.tolist(),
            "min": encode_float(self._minimum),
            "max": encode_float(self._maximum),
            "mean": self._mean,
            "m2": self._m2,
            "integer_valued": self._integer_valued,
            "small_counts": None
            if self._small_counts is None
            else [[encode_key(k), c] for k, c in self._small_counts.items()],
            "counts": [[encode_key(k), c] for k, c in self._counts.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WindowSample":
        """Restore a checkpoint written by :meth:`to_dict`."""
        window = cls(data["kind"], WindowConfig(**data["config"]))
        window._rng.bit_generator.state = data["rng_state"]
        window._seen = int(data["seen"])
        window._missing = int(data["missing"])
        window._reservoir = np.asarray(data["reservoir"], dtype=np.float64)
        window._minimum = decode_float(data["min"]) if data["min"] is not None else float("inf")
        window._maximum = decode_float(data["max"]) if data["max"] is not None else float("-inf")
        window._mean = float(data["mean"])
        window._m2 = float(data["m2"])
        window._integer_valued = bool(data["integer_valued"])
        small = data["small_counts"]
        window._small_counts = None if small is None else {float(cast(float, decode_key(k))): int(c) for k, c in small}
        window._counts = {decode_key(k): int(c) for k, c in data["counts"]}
        return window


__all__ = ["WindowSample"]
