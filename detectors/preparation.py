"""Resolving a column's kind and converting any supported input to prepared data.

Accepted inputs on either side of a drift test: raw values (numpy array, pandas
Series, list), or a *summary* -- an object implementing :class:`ColumnSummary`
(:class:`~detectors.profile.NumericReference`,
:class:`~detectors.profile.CategoricalReference`). Summaries know their own kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from detectors.column_data import CategoricalData, NumericData, categorical_data, numeric_data
from detectors.column_types import infer_column_type
from detectors.kinds import ArrayLike, ColumnKind, InferredKind
from detectors.missing import as_array, drop_missing

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13; only the type checker reads it


@runtime_checkable
class ColumnSummary(Protocol):
    """Something that already holds a prepared, possibly bounded, view of a column."""

    @property
    def kind(self) -> ColumnKind:
        """``num`` or ``cat``."""
        ...

    def column_data(self) -> NumericData | CategoricalData:
        """The prepared data the stat tests consume."""
        ...


@runtime_checkable
class ReferenceSummary(ColumnSummary, Protocol):
    """A reference summary that may need to map current values onto its own keys."""

    def align_current(self, current: NumericData | CategoricalData) -> NumericData | CategoricalData:
        """Return ``current`` expressed in the summary's key space (e.g. ``__other__``)."""
        ...


ColumnInput = ArrayLike | ColumnSummary


def _is_summary(values: ColumnInput) -> TypeIs[ColumnSummary]:
    """``isinstance(values, ColumnSummary)``, without the runtime Protocol check for plain arrays (it
    costs ~30 µs a call, and a window's drift prepares thousands of columns). ``TypeIs`` lets the type
    checker narrow both ways: a summary when true, raw values (:data:`ArrayLike`) when false."""
    return not isinstance(values, np.ndarray | list | tuple) and isinstance(values, ColumnSummary)


def resolve_kind(reference: ColumnInput, current: ColumnInput, column_type: ColumnKind | None) -> InferredKind:
    """Explicit type, else a summary's kind (reference first), else evidently's inference on current."""
    if column_type is not None:
        if column_type not in ("num", "cat"):
            raise ValueError(f"column_type must be 'num' or 'cat', got {column_type!r}")
        return column_type
    if _is_summary(reference):
        return reference.kind
    if _is_summary(current):
        return current.kind
    return infer_column_type(current)


def prepare(values: ColumnInput, kind: ColumnKind) -> NumericData | CategoricalData:
    """Convert one side to :class:`NumericData` / :class:`CategoricalData` for ``kind``."""
    if _is_summary(values):
        if values.kind != kind:
            raise ValueError(f"summary holds a {values.kind!r} column but {kind!r} was requested")
        return values.column_data()
    arr = as_array(values)
    if kind == "num":
        if arr.dtype.kind not in "fiub":
            if drop_missing(arr).size:
                raise ValueError(f"column should contain numerical values only, got dtype {arr.dtype}")
            arr = np.empty(0, dtype=np.float64)  # only missing values: an empty numeric column
        return numeric_data(arr)
    return categorical_data(arr)


__all__ = ["ColumnInput", "ColumnSummary", "ReferenceSummary", "prepare", "resolve_kind"]
