"""Stored traffic of one window or time range, as the columns the drift tests compare.

For the per-window report and for pinning a time range as a reference: both read the same
deterministic sample the stats engine reads, so what a user sees is what the engine measured.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from detectors import CategoricalReference, NumericReference
from schemas.stats import WindowKey
from schemas.times import as_utc
from streams.stats import DriftColumns, drift_columns, fetch_drift_columns, window_bounds
from streams.stats.references import Reference
from streams.storage import Storage
from streams.storage.inferences import CallSummary, sampled_calls


def window_key(project: str, model: str, moment: datetime, window_seconds: int) -> WindowKey:
    """The window that contains ``moment`` (naive = UTC)."""
    start, end = window_bounds(as_utc(moment), window_seconds)
    return WindowKey(project, model, start, end)


def sampled_columns(storage: Storage, key: WindowKey, rows: int) -> DriftColumns:
    """At most ``rows`` of the range's events (by event-id hash), as drift columns."""
    return fetch_drift_columns(storage, key, rows)


EXAMPLES_PER_SIDE = 3
EXAMPLE_SAMPLE_ROWS = 1000  # the first rows of the engine's own sample (same event-id-hash order)


@dataclass(frozen=True, slots=True)
class ExtremeCall:
    call: CallSummary
    value: float | str


@dataclass(frozen=True, slots=True)
class ColumnExtremes:
    """The calls of the window most extreme on one drifted column, in the direction it moved: the
    highest values when its mean rose (the longest prompts, the refusals), else the lowest; for a
    categorical column, calls with the category whose share grew the most."""

    column: str
    direction: Literal["highest", "lowest", "grown category"]
    reference_mean: float | None
    current_mean: float | None
    calls: list[ExtremeCall]


@dataclass(frozen=True, slots=True)
class FamilyExamples:
    """One drifted family: sampled calls of the reference and of the window, and the extreme calls."""

    family: str
    reference: list[CallSummary]
    current: list[CallSummary]
    extremes: list[ColumnExtremes]


def _numeric_extremes(
    column: str, values: np.ndarray, reference: NumericReference | None, calls: list[CallSummary]
) -> ColumnExtremes | None:
    finite = np.isfinite(values)
    if not finite.any():
        return None
    current_mean = float(values[finite].mean())
    reference_mean = reference.mean if reference is not None and math.isfinite(reference.mean) else None
    rising = reference_mean is None or current_mean >= reference_mean
    order = np.argsort(np.where(finite, values, -np.inf if rising else np.inf), kind="stable")
    picked = order[::-1][:EXAMPLES_PER_SIDE] if rising else order[:EXAMPLES_PER_SIDE]
    return ColumnExtremes(
        column,
        "highest" if rising else "lowest",
        reference_mean,
        current_mean,
        [ExtremeCall(calls[i], float(values[i])) for i in picked if finite[i]],
    )


def _category_extremes(
    column: str, values: np.ndarray, reference: CategoricalReference | None, calls: list[CallSummary]
) -> ColumnExtremes | None:
    present = [str(v) for v in values if v is not None]
    if not present:
        return None
    current = Counter(present)
    reference_share: dict[str, float] = {}
    if reference is not None:
        total = float(sum(reference.counts.counts)) or 1.0
        reference_share = {
            str(k): c / total for k, c in zip(reference.counts.keys, reference.counts.counts, strict=True)
        }
    grown = max(current, key=lambda k: (current[k] / len(present) - reference_share.get(k, 0.0), k))
    picked = [i for i, v in enumerate(values) if v is not None and str(v) == grown][:EXAMPLES_PER_SIDE]
    return ColumnExtremes(column, "grown category", None, None, [ExtremeCall(calls[i], grown) for i in picked])


def window_examples(
    storage: Storage, key: WindowKey, reference: Reference | None, drifted: dict[str, list[str]]
) -> list[FamilyExamples]:
    """For each drifted family (``family → its drifted columns``), calls of the reference range and of
    the window side by side, and the window's calls most extreme on the drifted columns. The columns
    are computed by the stats engine's own code (``streams.stats.drift_columns`` over ``detectors``)."""
    if not drifted:
        return []
    sample = sampled_calls(storage, key.project, key.model, key.start, key.end, EXAMPLE_SAMPLE_ROWS)
    calls = [s.call for s in sample]
    columns = drift_columns([s.features for s in sample], [s.prompt for s in sample], [s.response for s in sample])
    reference_calls: list[CallSummary] = []
    if reference is not None and reference.range_start is not None and reference.range_end is not None:
        reference_calls = [
            s.call
            for s in sampled_calls(
                storage, key.project, key.model, reference.range_start, reference.range_end, EXAMPLES_PER_SIDE
            )
        ]
    profile = reference.profile.columns if reference is not None else {}
    out = []
    for family, names in sorted(drifted.items()):
        extremes = []
        for name in names:
            values = columns.columns.get(name)
            if values is None:
                continue
            ref = profile.get(name)
            if columns.kinds.get(name) == "num":
                found = _numeric_extremes(name, values, ref if isinstance(ref, NumericReference) else None, calls)
            else:
                found = _category_extremes(name, values, ref if isinstance(ref, CategoricalReference) else None, calls)
            if found is not None and found.calls:
                extremes.append(found)
        out.append(FamilyExamples(family, reference_calls, calls[:EXAMPLES_PER_SIDE], extremes))
    return out
