"""Two model versions side by side: every metric of each, with the significance of the difference.

Pure (no I/O): ``api.queries.compare`` reads the two versions' events and feedback over a time range;
this module applies the tests the window statistics already use, with version ``a`` as the reference:
Mann-Whitney U for latency, cost and tokens per call and for ratings, two-proportion z / Fisher for the
error and thumbs-up rates, and the family drift rule (``detectors.family_drift``) of ``b`` against ``a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors import proportion_change, ratings_change, score_change
from detectors.family_drift import family_drift
from streams.stats.families import COLUMN_FAMILIES
from streams.stats.window_data import DriftColumns

ALPHA = 0.05


@dataclass(frozen=True)
class VersionData:
    """What the comparison needs of one version over the range (a bounded sample of its events)."""

    events: int
    latencies: np.ndarray
    errors: int
    costs: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    columns: DriftColumns
    thumbs: list[float]
    ratings: list[float]


@dataclass(frozen=True)
class MetricComparison:
    family: str
    metric: str
    dimension: str
    a: float | None
    b: float | None
    difference: float | None
    p_value: float | None
    test: str
    significant: bool
    details: dict[str, Any]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _ranks(family: str, metric: str, a: np.ndarray, b: np.ndarray, *, ratings: bool = False) -> MetricComparison | None:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not a.size or not b.size:
        return None
    change = ratings_change(a, b) if ratings else score_change(a, b)
    p = _finite(change.p_value)
    return MetricComparison(
        family,
        metric,
        "",
        float(a.mean()),
        float(b.mean()),
        float(b.mean() - a.mean()),
        p,
        change.test,
        p is not None and p < ALPHA,
        {
            "median_a": change.median_ref,
            "median_b": change.median_cur,
            "n_a": int(a.size),
            "n_b": int(b.size),
            "rank_biserial": _finite(change.rank_biserial),
        },
    )


def _rate(family: str, metric: str, hits_a: int, n_a: int, hits_b: int, n_b: int) -> MetricComparison | None:
    if not n_a or not n_b:
        return None
    change = proportion_change(hits_a, n_a, hits_b, n_b)
    p = _finite(change.p_value)
    return MetricComparison(
        family,
        metric,
        "",
        change.rate_ref,
        change.rate_cur,
        change.difference,
        p,
        change.test,
        p is not None and p < ALPHA,
        {"n_a": n_a, "n_b": n_b},
    )


def compare_versions(a: VersionData, b: VersionData) -> list[MetricComparison]:
    """Every metric both versions have, ``a`` as the reference; ``significant`` at p < 0.05 per metric
    (family drift: its own rule and budget)."""
    out: list[MetricComparison | None] = [
        _ranks("latency", "latency_ms", a.latencies, b.latencies),
        _rate("latency", "error_rate", a.errors, a.events, b.errors, b.events),
        _ranks("cost", "cost_usd_per_call", a.costs, b.costs),
        _ranks("cost", "input_tokens", a.input_tokens, b.input_tokens),
        _ranks("cost", "output_tokens", a.output_tokens, b.output_tokens),
    ]
    thumbs_a, thumbs_b = np.asarray(a.thumbs, dtype=float), np.asarray(b.thumbs, dtype=float)
    out.append(
        _rate(
            "quality",
            "thumbs_up_rate",
            int((thumbs_a > 0).sum()),
            int(thumbs_a.size),
            int((thumbs_b > 0).sum()),
            int(thumbs_b.size),
        )
    )
    out.append(
        _ranks(
            "quality",
            "mean_rating",
            np.asarray(a.ratings, dtype=float),
            np.asarray(b.ratings, dtype=float),
            ratings=True,
        )
    )
    families: dict[str, list[str]] = {}
    for name in a.columns.columns:
        for prefix, family in COLUMN_FAMILIES.items():
            if name.startswith(prefix) and name in b.columns.columns:
                families.setdefault(family, []).append(name)
    verdicts = family_drift(a.columns.columns, b.columns.columns, families, column_types=a.columns.kinds)
    for family, verdict in verdicts.items():
        out.append(
            MetricComparison(
                "drift",
                "family_drift",
                family,
                None,
                verdict.share_drifted,
                None,
                verdict.p_value,
                "bonferroni_min_p_with_effect_gate",
                verdict.drifted,
                {
                    "drifted_columns": list(verdict.drifted_columns),
                    "strongest_column": verdict.strongest_column,
                    "strongest_effect": _finite(verdict.strongest_effect),
                    "alpha": verdict.alpha,
                },
            )
        )
    return [item for item in out if item is not None]


__all__ = ["MetricComparison", "VersionData", "compare_versions"]
