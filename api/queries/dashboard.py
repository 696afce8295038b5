"""What the dashboard reads beyond the API: the project list, every model's recent windows, the
reference windows' means, and per-version latency, composed from the table modules of
``streams.storage`` (``window_stats``, ``inferences``). Per-window series of one model are shaped by
``api.queries.stats``; alerts and monitors come from their stores in ``streams.monitors``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from api.queries.stats import point
from streams.storage import Storage, window_stats
from streams.storage.inferences import model_names, project_names
from streams.storage.window_stats import WindowSpan

__all__ = [
    "MODEL_PAGE_METRICS",
    "OVERVIEW_METRICS",
    "ModelWindows",
    "Point",
    "WindowSpan",
    "model_series",
    "model_window_range",
    "model_windows",
    "projects",
    "top_drifted_columns",
    "version_series",
]

T = TypeVar("T")

# The model-wide numbers of the overview: (family, metric) with dimension '' (family_drift has one per family).
OVERVIEW_METRICS: tuple[tuple[str, str], ...] = (
    ("latency", "count"),
    ("latency", "latency_p95_ms"),
    ("latency", "error_rate"),
    ("cost", "cost_usd"),
    ("cost", "unknown_cost_events"),
    ("quality", "thumbs_up_rate"),
    ("drift", "dataset_drift"),
    ("drift", "family_drift"),
)


# What the model page charts (per-column drift is aggregated separately: ``top_drifted_columns``).
MODEL_PAGE_METRICS: tuple[str, ...] = (
    "count",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "cost_usd",
    "unknown_cost_events",
    "input_tokens",
    "output_tokens",
    "dataset_drift",
    "family_drift",
    "thumbs_up_rate",
    "accuracy",
    "mean_rating",
    "score_mean",
    "estimated_thumbs_up_rate",
    "share_with_pii",
)


@dataclass(slots=True)
class Point:
    window_start: datetime
    value: float
    flagged: bool
    sample_size: int = 0


@dataclass(slots=True)
class ModelWindows:
    """One model's last windows per metric (oldest first) and the reference windows' mean per metric."""

    model: str
    series: dict[str, list[Point]] = field(default_factory=dict)
    families: dict[str, Point] = field(default_factory=dict)  # latest family_drift verdict per family
    reference: dict[str, float] = field(default_factory=dict)


def projects(storage: Storage) -> list[str]:
    """Every project with a key or an event (the admin's project picker, read on every admin request:
    cached, since it scans the project column of every stored event)."""
    return _cached(("projects", storage.database), lambda: project_names(storage))


def model_windows(storage: Storage, project: str, windows: int, now: datetime) -> list[ModelWindows]:
    """Every model of the project with its last ``windows`` windows of the overview metrics that start
    by ``now`` (a window stamped in the future, e.g. by a client's wrong clock, never becomes "latest")."""
    models = {model: ModelWindows(model) for model in model_names(storage, project)}
    for row in reversed(window_stats.latest_windows(storage, project, OVERVIEW_METRICS, windows, now)):
        summary = models.setdefault(row.model, ModelWindows(row.model))
        at = Point(row.window_start, row.value, row.flagged, row.sample_size)
        if row.metric == "family_drift":
            summary.families[row.dimension] = at  # rows run oldest first: the last one stays
        else:
            summary.series.setdefault(row.metric, []).append(at)
    for mean in _reference_means(storage, project):
        if mean.model in models:
            models[mean.model].reference[mean.metric] = mean.mean
    return sorted(models.values(), key=lambda m: m.model)


_CACHE_SECONDS = 30.0
_cache: dict[tuple[str, ...], tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple[str, ...], compute: Callable[[], T]) -> T:
    """``compute()``, kept for 30 s per ``key``: for the dashboard's reads that change rarely and cost
    the most (the reference join of the overview, the admin's project list on every request)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit[0] > now:
        return cast(T, hit[1])
    value = compute()
    with _cache_lock:
        if len(_cache) > 1000:
            _cache.clear()
        _cache[key] = (now + _CACHE_SECONDS, value)
    return value


def _reference_means(storage: Storage, project: str) -> list[window_stats.ReferenceMean]:
    """Each model's mean of the overview metrics over its reference range, cached: references change
    rarely (a first window once, an upload now and then) and the join is the overview's most expensive
    read."""
    metrics = [metric for _, metric in OVERVIEW_METRICS if metric != "family_drift"]
    return _cached(
        ("reference", storage.database, project), lambda: window_stats.reference_means(storage, project, metrics)
    )


def model_series(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Per family, the model-wide rows of the metrics the model page charts (one query instead of
    four, ``details`` never parsed), shaped like ``stat_rows`` rows so ``rebucket`` re-buckets them
    exactly as ``GET /v1/stats?interval=`` does."""
    out: dict[str, list[dict[str, Any]]] = {"latency": [], "cost": [], "drift": [], "quality": [], "privacy": []}
    for row in window_stats.model_series(storage, project, model, MODEL_PAGE_METRICS, since, until):
        out.setdefault(row.family, []).append(point(row))
    return out


def top_drifted_columns(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None, top: int = 10
) -> list[dict[str, Any]]:
    """Columns by the number of windows they drifted in over the range, then by their smallest p-value."""
    return [
        {"name": c.name, "flagged": c.flagged, "windows": c.windows, "min_p": c.min_p}
        for c in window_stats.column_drift_counts(storage, project, model, since, until, top)
    ]


def version_series(
    storage: Storage, project: str, model: str, metric: str, since: datetime | None, until: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Per model version (those written per version: latency and cost), one metric's windows."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in window_stats.version_rows(storage, project, model, metric, since, until):
        out[row.model_version].append(
            {"window_start": row.window_start, "value": row.value, "sample_size": row.sample_size}
        )
    return dict(out)


def model_window_range(storage: Storage, project: str, model: str, now: datetime) -> WindowSpan | None:
    """The model page's default range comes from this (None: no closed window yet)."""
    return window_stats.window_span(storage, project, model, now)
