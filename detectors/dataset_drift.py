"""Drift of every shared column plus the dataset-level verdict of DataDriftPreset."""

import dataclasses
from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from detectors.column_drift import drift_on_prepared
from detectors.evidently_defaults import DATASET_DRIFT_SHARE
from detectors.kinds import ColumnKind, Correction, is_drift_kind
from detectors.multiple_testing import adjust_p_values
from detectors.preparation import ColumnInput, ReferenceSummary, prepare, resolve_kind
from detectors.profile import ReferenceProfile
from detectors.results import ColumnDriftResult, DatasetDriftResult
from detectors.stattests import get_stat_test

_T = TypeVar("_T")


def dataset_drift(
    reference: Mapping[str, ColumnInput] | ReferenceProfile,
    current: Mapping[str, ColumnInput],
    *,
    drift_share: float = DATASET_DRIFT_SHARE,
    column_types: Mapping[str, ColumnKind] | None = None,
    method: str | Mapping[str, str] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    correction: Correction = "none",
) -> DatasetDriftResult:
    """Run :func:`~detectors.column_drift.column_drift` on every column present on both sides.

    ``reference`` may be a mapping of arrays (dict, pandas DataFrame) or a
    :class:`~detectors.profile.ReferenceProfile`; ``current`` a mapping of arrays or of column
    summaries. Column kinds come from ``column_types``,
    else from summaries, else evidently's inference on the current values; text,
    datetime and unknown columns are listed in ``skipped``. ``method`` / ``threshold``
    apply to all columns or per column (a mapping; missing names use the default).

    ``correction`` adjusts the p-values of p-value tests (ks, chisquare, z) across
    the tested columns before comparing with their thresholds; distance tests are
    never corrected. The dataset drifts when ``drifted / tested >= drift_share``
    (evidently's rule); with no testable column the share is NaN and no drift is
    declared.
    """
    ref_columns = reference.columns if isinstance(reference, ReferenceProfile) else reference
    types = column_types or {}
    results: dict[str, ColumnDriftResult] = {}
    skipped: dict[str, str] = {}
    ref_names = set(ref_columns.keys())
    for name in list(current.keys()):
        if name not in ref_names:
            skipped[name] = "missing in reference"
            continue
        ref_in, cur_in = ref_columns[name], current[name]
        kind = resolve_kind(ref_in, cur_in, types.get(name))
        if not is_drift_kind(kind):
            skipped[name] = f"column type {kind!r} is not drift-tested"
            continue
        ref = prepare(ref_in, kind)
        cur = prepare(cur_in, kind)
        if isinstance(ref_in, ReferenceSummary):
            cur = ref_in.align_current(cur)
        results[name] = drift_on_prepared(
            ref,
            cur,
            kind,
            method=_per_column(method, name),
            threshold=_per_column(threshold, name),
            column=name,
        )
    current_names = set(current.keys())
    for name in ref_columns:
        if name not in current_names:
            skipped[name] = "missing in current"
    if correction != "none":
        results = _corrected(results, correction)
    tested = [r for r in results.values() if r.status == "ok"]
    n_drifted = sum(r.drifted for r in tested)
    share = n_drifted / len(tested) if tested else float("nan")
    return DatasetDriftResult(
        columns=results,
        n_columns=len(tested),
        n_drifted=n_drifted,
        share_drifted=share,
        drift_share=drift_share,
        dataset_drifted=bool(tested) and share >= drift_share,
        correction=correction,
        skipped=skipped,
    )


def _per_column(setting: _T | Mapping[str, _T] | None, name: str) -> _T | None:
    if isinstance(setting, Mapping):
        return setting.get(name)
    return setting


def _corrected(results: dict[str, ColumnDriftResult], correction: Correction) -> dict[str, ColumnDriftResult]:
    """Adjust the p-values of ok p-value results and re-decide their drift flags."""
    # every ok p-value result names its test and threshold; the checks narrow the optional fields
    family = {
        name: (r.p_value, r.method, r.threshold)
        for name, r in results.items()
        if r.status == "ok" and r.p_value is not None and r.method is not None and r.threshold is not None
    }
    if not family:
        return results
    adjusted = adjust_p_values(np.array([p for p, _, _ in family.values()], dtype=np.float64), correction)
    out = dict(results)
    for (name, (_, method, threshold)), adj in zip(family.items(), adjusted.tolist(), strict=True):
        out[name] = dataclasses.replace(
            results[name],
            adjusted_p_value=adj,
            drifted=get_stat_test(method).is_drift(adj, threshold),
        )
    return out


__all__ = ["dataset_drift"]
