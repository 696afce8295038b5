"""Shared type aliases for the detectors package.

Kept separate so every module speaks the same vocabulary without importing
calculation code.
"""

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, TypeGuard

import numpy as np

ColumnKind: TypeAlias = Literal["num", "cat"]
"""Kinds a drift test can run on: numerical or categorical."""

InferredKind: TypeAlias = Literal["num", "cat", "text", "datetime", "unknown"]
"""Everything :func:`detectors.column_types.infer_column_type` can answer; only
``num`` and ``cat`` are drift-testable, the rest are reported as skipped."""


def is_drift_kind(kind: InferredKind) -> TypeGuard[ColumnKind]:
    """Whether an inferred kind can be drift-tested; narrows it to :data:`ColumnKind` for the type checker."""
    return kind in ("num", "cat")


ArrayLike: TypeAlias = np.ndarray | Sequence[Any]
"""One column of values: a numpy array, a pandas Series (via ``__array__``) or a list."""

Correction: TypeAlias = Literal["none", "bonferroni", "holm", "fdr_bh"]
"""Multiple-testing corrections applied across a dataset's p-value columns."""

ResultStatus: TypeAlias = Literal["ok", "insufficient_data"]
"""``insufficient_data`` replaces evidently's ``ValueError`` on empty columns."""

__all__ = ["ArrayLike", "ColumnKind", "Correction", "InferredKind", "ResultStatus", "is_drift_kind"]
