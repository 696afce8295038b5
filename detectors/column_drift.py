"""Drift of one column versus a reference: arrays (or summaries) in, verdict out."""

from detectors.column_data import CategoricalData, NumericData
from detectors.kinds import ColumnKind, is_drift_kind
from detectors.preparation import ColumnInput, ReferenceSummary, prepare, resolve_kind
from detectors.results import ColumnDriftResult
from detectors.stattests import default_stat_test, get_stat_test


def column_drift(
    reference: ColumnInput,
    current: ColumnInput,
    *,
    column_type: ColumnKind | None = None,
    method: str | None = None,
    threshold: float | None = None,
    column: str | None = None,
) -> ColumnDriftResult:
    """Test one column for drift the way evidently's DataDriftPreset would.

    ``column_type=None`` infers the type from ``current`` with evidently's rules
    (or takes it from a profile/window summary); ``method=None`` picks evidently's
    default test (see :mod:`detectors.stattests.selection`); ``threshold=None``
    uses the test's default. Missing values (None/NaN/inf) are dropped first; if
    either side is then empty the result has ``status="insufficient_data"``
    instead of raising like evidently does.

    Raises ``ValueError`` for an unknown method, a method not valid for the
    column type, or a column whose inferred type is text/datetime/unknown.
    """
    kind = resolve_kind(reference, current, column_type)
    if not is_drift_kind(kind):
        raise ValueError(
            f"column {column!r} was inferred as {kind!r}; drift is computed for 'num' or 'cat' columns only "
            "(pass column_type explicitly, or use text_descriptors for free text)"
        )
    ref = prepare(reference, kind)
    cur = prepare(current, kind)
    if isinstance(reference, ReferenceSummary):
        cur = reference.align_current(cur)
    return drift_on_prepared(ref, cur, kind, method=method, threshold=threshold, column=column)


def drift_on_prepared(
    ref: NumericData | CategoricalData,
    cur: NumericData | CategoricalData,
    kind: ColumnKind,
    *,
    method: str | None,
    threshold: float | None,
    column: str | None,
) -> ColumnDriftResult:
    """Run the selected test on already prepared data (shared by dataset drift)."""
    if ref.n == 0 or cur.n == 0:
        side = "reference" if ref.n == 0 else "current"
        return ColumnDriftResult(
            column=column,
            column_type=kind,
            method=method,
            display_name=None,
            value=float("nan"),
            threshold=threshold,
            drifted=False,
            p_value=None,
            n_reference=ref.n,
            n_current=cur.n,
            status="insufficient_data",
            reason=f"no non-missing values in {side}",
        )
    spec = get_stat_test(method, kind) if method is not None else default_stat_test(ref, cur, kind)
    actual_threshold = spec.default_threshold if threshold is None else float(threshold)
    value = float(spec.func(ref, cur))
    return ColumnDriftResult(
        column=column,
        column_type=kind,
        method=spec.name,
        display_name=spec.display_name,
        value=value,
        threshold=actual_threshold,
        drifted=spec.is_drift(value, actual_threshold),
        p_value=value if spec.is_p_value else None,
        n_reference=ref.n,
        n_current=cur.n,
    )


__all__ = ["column_drift", "drift_on_prepared"]
