"""Column type inference that mirrors evidently's ``infer_column_type``.

evidently 0.7.23 (``core/datasets.py::infer_column_type``) infers the type of every
column from the **current** dataset (``core/report.py::Context.data_definition``
returns ``self._input_data[0]._data_definition``) with these rules:

* float dtype -> numerical;
* int dtype -> categorical when it has ``<= 10`` distinct values, else numerical;
* bool / category -> categorical;
* strings -> text when distinct values exceed half the non-null count, else categorical;
* datetimes -> datetime; anything else (lists, mixed objects) -> unknown.

Only numerical and categorical columns are drift-tested here; evidently would run its
text-content (domain classifier) drift on text columns, which this package leaves to
:func:`detectors.text_descriptors.text_descriptors` plus numeric drift.
"""

import numpy as np

from detectors.evidently_defaults import INTEGER_CARDINALITY_LIMIT, TEXT_UNIQUE_SHARE
from detectors.kinds import ArrayLike, InferredKind
from detectors.missing import as_array, drop_missing


def infer_column_type(values: ArrayLike) -> InferredKind:
    """Infer ``num`` / ``cat`` / ``text`` / ``datetime`` / ``unknown`` exactly like evidently."""
    arr = as_array(values)
    kind = arr.dtype.kind
    if kind == "f":
        return "num"
    if kind in "iu":
        return "cat" if np.unique(arr).size <= INTEGER_CARDINALITY_LIMIT else "num"
    if kind == "b":
        return "cat"
    if kind == "M":
        return "datetime"
    if kind in "US":
        return _string_kind(arr)
    if kind == "O":
        present = drop_missing(arr)
        if present.size == 0:
            return "unknown"
        first, last = present[0], present[-1]
        if isinstance(first, str) and isinstance(last, str):
            return _string_kind(present)
        return "unknown"
    return "unknown"


def _string_kind(present: np.ndarray) -> InferredKind:
    """evidently: ``nunique() > count() * 0.5`` -> text, else categorical."""
    n_unique = len(set(present.tolist()))
    return "text" if n_unique > present.size * TEXT_UNIQUE_SHARE else "cat"


__all__ = ["infer_column_type"]
