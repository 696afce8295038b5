"""Turning arbitrary column inputs into numpy arrays and dropping missing values.

evidently (``legacy/calculations/data_drift.py::get_one_column_drift``) runs
``column.replace([-inf, inf], nan).dropna()`` before any test, so ``None``,
NaN, +/-inf, ``pd.NA`` and ``NaT`` never reach a statistic. We do the same without
importing pandas: the hot path for float columns is a single ``np.isfinite``.
"""

from typing import Any

import numpy as np

from detectors.kinds import ArrayLike

_PANDAS_MISSING_TYPES = frozenset({"NAType", "NaTType"})


def as_array(values: ArrayLike) -> np.ndarray:
    """Return a 1-D numpy view of ``values`` the way pandas would type a list column.

    pandas turns ``[1, 2, None]`` into float64 with NaN, so an object array whose
    non-missing entries are all real numbers (bools excluded, as pandas keeps those
    object) is converted to float64; without missing entries and only ints it
    becomes int64. Everything else is returned as ``np.asarray`` gives it.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype != object or arr.size == 0:
        return arr
    items = arr.tolist()
    n_present = 0
    all_int = True
    for value in items:
        if is_missing(value):
            continue
        if not _is_real_number(value):
            return arr  # strings, bools, mixed: leave as object (stops at the first one)
        n_present += 1
        all_int = all_int and isinstance(value, (int, np.integer))
    if n_present == 0:
        return arr
    if all_int and n_present == arr.size:
        return np.asarray(items, dtype=np.int64)
    return np.asarray([np.nan if is_missing(v) else float(v) for v in items], dtype=np.float64)


def _is_real_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, +/-inf, ``pd.NA`` and ``pd.NaT`` (evidently drops all of them)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return not np.isfinite(value)
    return type(value).__name__ in _PANDAS_MISSING_TYPES


def drop_missing(arr: np.ndarray) -> np.ndarray:
    """Remove missing entries; returns ``arr`` itself when nothing is missing (no copy)."""
    kind = arr.dtype.kind
    if kind == "f":
        finite = np.isfinite(arr)
        return arr if finite.all() else arr[finite]
    if kind in "iubUS":
        return arr
    if kind in "Mm":
        present: np.ndarray = arr[~np.isnat(arr)]
        return present
    keep = np.fromiter((not is_missing(v) for v in arr.tolist()), dtype=bool, count=arr.size)
    return arr if keep.all() else arr[keep]


__all__ = ["as_array", "drop_missing", "is_missing"]
