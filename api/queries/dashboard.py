"""Reads the dashboard needs beyond the API's: the project list, every model's recent windows in one
query, the reference windows' means, and per-version latency. Per-window series of one model reuse
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

from api.queries.stats import overlapping
from streams.storage import Storage, as_utc, ch_time
from streams.storage.inferences import model_names

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
    return _cached(("projects", storage.database), lambda: _read_projects(storage))


def _read_projects(storage: Storage) -> list[str]:
    db = storage.database
    rows = storage.query(
        f"SELECT DISTINCT project FROM {db}.api_keys UNION DISTINCT SELECT DISTINCT project FROM {db}.inferences"
    ).result_rows
    return sorted(str(row[0]) for row in rows)


def model_windows(storage: Storage, project: str, windows: int, now: datetime) -> list[ModelWindows]:
    """Every model of the project with its last ``windows`` windows of the overview metrics that start
    by ``now`` (a window stamped in the future, e.g. by a client's wrong clock, never becomes "latest")."""
    db = storage.database
    models = {model: ModelWindows(model) for model in model_names(storage, project)}
    wanted = " OR ".join(
        f"(family = '{family}' AND metric = '{metric}'" + (")" if metric == "family_drift" else " AND dimension = '')")
        for family, metric in OVERVIEW_METRICS
    )
    # Each model's last windows are found on the key columns of one series first, then only those
    # windows are read, each row's newest version kept (what FINAL keeps: ReplacingMergeTree(computed_at))
    # without FINAL's merge of every part of the project.
    rows = storage.query(
        "SELECT model, metric, dimension, window_start, value, flagged, sample_size FROM ("
        f"SELECT model, metric, dimension, window_start, value, flagged, sample_size FROM {db}.window_stats "
        f"WHERE project = {{project:String}} AND model_version = '' AND ({wanted}) AND (model, window_start) IN "
        f"(SELECT model, window_start FROM {db}.window_stats WHERE project = {{project:String}} "
        "AND family = 'latency' AND metric = 'count' AND dimension = '' AND model_version = '' "
        "AND window_start <= {now:DateTime64(3, 'UTC')} "
        "ORDER BY window_start DESC LIMIT {windows:UInt32} BY model) "
        "ORDER BY computed_at DESC LIMIT 1 BY model, metric, dimension, window_start"
        ") ORDER BY window_start DESC LIMIT {windows:UInt32} BY model, metric, dimension",
        {"project": project, "windows": windows, "now": ch_time(now)},
    ).result_rows
    for model, metric, dimension, start, value, flagged, size in reversed(rows):
        summary = models.setdefault(str(model), ModelWindows(str(model)))
        point = Point(as_utc(start), float(value), bool(flagged), int(size))
        if metric == "family_drift":
            summary.families[str(dimension)] = point  # rows run oldest first: the last one stays
        else:
            summary.series.setdefault(str(metric), []).append(point)
    for model, metric, mean in _reference_means(storage, project):
        if model in models:
            models[model].reference[metric] = mean
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


def _reference_means(storage: Storage, project: str) -> list[tuple[str, str, float]]:
    """``_read_reference_means``, cached: references change rarely (a first window once, an upload now
    and then) and the join is the overview's most expensive read."""
    return _cached(("reference", storage.database, project), lambda: _read_reference_means(storage, project))


def _read_reference_means(storage: Storage, project: str) -> list[tuple[str, str, float]]:
    """Each model's mean of the overview metrics over its reference range (the active reference:
    the explicit slot when there is one, else the first window); none for an uploaded dataset."""
    db = storage.database
    metrics = [metric for _, metric in OVERVIEW_METRICS if metric != "family_drift"]
    rows = storage.query(
        f"SELECT s.model, s.metric, avg(s.value) FROM {db}.window_stats AS s FINAL "
        "INNER JOIN (SELECT model, argMax(range_start, (explicit, created_at)) AS rs, "
        "argMax(range_end, (explicit, created_at)) AS re "
        f"FROM {db}.references FINAL WHERE project = {{project:String}} GROUP BY model) AS r ON s.model = r.model "
        "WHERE s.project = {project:String} AND s.model_version = '' AND s.dimension = '' "
        "AND s.metric IN {metrics:Array(String)} AND r.rs IS NOT NULL "
        # a bound on the primary key before the join: only windows inside some model's reference range
        f"AND s.window_start >= (SELECT min(range_start) FROM {db}.references WHERE project = {{project:String}}) "
        f"AND s.window_start < (SELECT max(range_end) FROM {db}.references WHERE project = {{project:String}}) "
        "AND s.window_start >= r.rs AND s.window_end <= r.re GROUP BY s.model, s.metric",
        {"project": project, "metrics": metrics},
    ).result_rows
    return [(str(model), str(metric), float(mean)) for model, metric, mean in rows]


def model_series(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Per family, the model-wide rows of the metrics the model page charts (one query instead of
    four, ``details`` never parsed), shaped like ``stat_rows`` rows so ``rebucket`` re-buckets them
    exactly as ``GET /v1/stats?interval=`` does."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version = ''",
        "metric IN {metrics:Array(String)}",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "metrics": list(MODEL_PAGE_METRICS)}
    overlapping(clauses, params, since, until)
    rows = storage.query(
        "SELECT family, window_start, window_end, metric, dimension, value, p_value, threshold, flagged, sample_size "
        f"FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "ORDER BY window_start, metric, dimension LIMIT 200000",
        params,
    ).result_rows
    out: dict[str, list[dict[str, Any]]] = {"latency": [], "cost": [], "drift": [], "quality": []}
    moments: dict[datetime, datetime] = {}  # rows share their window bounds: convert each once
    for family, start, end, metric, dimension, value, p_value, threshold, flagged, size in rows:
        if start not in moments:
            moments[start] = as_utc(start)
        if end not in moments:
            moments[end] = as_utc(end)
        out.setdefault(str(family), []).append(
            {
                "model": model,
                "model_version": "",
                "window_start": moments[start],
                "window_end": moments[end],
                "metric": metric,
                "dimension": dimension,
                "value": value,
                "p_value": p_value,
                "threshold": threshold,
                "flagged": bool(flagged),
                "sample_size": size,
                "details": {},
            }
        )
    return out


def top_drifted_columns(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None, top: int = 10
) -> list[dict[str, Any]]:
    """Columns by the number of windows they drifted in over the range, then by their smallest p-value."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version = ''",
        "family = 'drift'",
        "metric = 'column_drift'",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "top": top}
    overlapping(clauses, params, since, until)
    rows = storage.query(
        "SELECT dimension, sum(flagged) AS drifted, count() AS windows, min(p_value) AS min_p "
        f"FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "GROUP BY dimension ORDER BY drifted DESC, min_p ASC, dimension LIMIT {top:UInt32}",
        params,
    ).result_rows
    return [
        {"name": name, "flagged": int(drifted), "windows": int(windows), "min_p": min_p}
        for name, drifted, windows, min_p in rows
    ]


def version_series(
    storage: Storage, project: str, model: str, metric: str, since: datetime | None, until: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Per model version (those written per version: latency and cost), one metric's windows."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version != ''",
        "metric = {metric:String}",
        "dimension = ''",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "metric": metric}
    overlapping(clauses, params, since, until)
    rows = storage.query(
        f"SELECT model_version, window_start, value, sample_size FROM {storage.database}.window_stats FINAL "
        f"WHERE {' AND '.join(clauses)} ORDER BY model_version, window_start LIMIT 100000",
        params,
    ).result_rows
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version, start, value, size in rows:
        out[str(version)].append({"window_start": as_utc(start), "value": float(value), "sample_size": int(size)})
    return dict(out)


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """A model's closed windows as of ``now``: the first start, the last end of those that started by
    ``now`` (None when every window lies ahead), and how many start after ``now`` (future timestamps)."""

    first_start: datetime
    last_end: datetime | None
    ahead: int


def model_window_range(storage: Storage, project: str, model: str, now: datetime) -> WindowSpan | None:
    """The model page's default range comes from this (None: no closed window yet)."""
    row = storage.query(
        "SELECT min(window_start), maxIf(window_end, window_start <= {now:DateTime64(3, 'UTC')}), "
        "uniqExactIf(window_start, window_start > {now:DateTime64(3, 'UTC')}), uniqExact(window_start) "
        f"FROM {storage.database}.window_stats "
        "WHERE project = {project:String} AND model = {model:String} AND family = 'latency' AND metric = 'count' "
        "AND dimension = '' AND model_version = ''",
        {"project": project, "model": model, "now": ch_time(now)},
    ).result_rows[0]
    if not row[3]:
        return None
    past = int(row[3]) - int(row[2])
    return WindowSpan(as_utc(row[0]), as_utc(row[1]) if past else None, int(row[2]))
