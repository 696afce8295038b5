"""Reads the dashboard needs beyond the API's: the project list, every model's recent windows in one
query, the reference windows' means, and per-version latency. Per-window series of one model reuse
``api.queries.stats``; alerts and monitors come from their stores in ``streams.monitors``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.storage import Storage, as_utc, ch_time

# The model-wide numbers of the overview: (family, metric) with dimension '' (family_drift has one per family).
OVERVIEW_METRICS: tuple[tuple[str, str], ...] = (
    ("latency", "count"),
    ("latency", "latency_p95_ms"),
    ("latency", "error_rate"),
    ("cost", "cost_usd"),
    ("quality", "thumbs_up_rate"),
    ("drift", "dataset_drift"),
    ("drift", "family_drift"),
)


@dataclass(slots=True)
class Point:
    window_start: datetime
    value: float
    flagged: bool


@dataclass(slots=True)
class ModelWindows:
    """One model's last windows per metric (oldest first) and the reference windows' mean per metric."""

    model: str
    last_seen: datetime | None = None
    series: dict[str, list[Point]] = field(default_factory=dict)
    families: dict[str, Point] = field(default_factory=dict)  # latest family_drift verdict per family
    reference: dict[str, float] = field(default_factory=dict)


def projects(storage: Storage) -> list[str]:
    """Every project with a key or an event (the admin's project picker)."""
    db = storage.database
    rows = storage.query(
        f"SELECT DISTINCT project FROM {db}.api_keys UNION DISTINCT SELECT DISTINCT project FROM {db}.inferences"
    ).result_rows
    return sorted(str(row[0]) for row in rows)


def model_windows(storage: Storage, project: str, windows: int) -> list[ModelWindows]:
    """Every model of the project with its last ``windows`` windows of the overview metrics."""
    db = storage.database
    models = {
        str(model): ModelWindows(str(model), as_utc(last))
        for model, last in storage.query(
            f"SELECT model, max(timestamp) FROM {db}.inferences WHERE project = {{project:String}} GROUP BY model",
            {"project": project},
        ).result_rows
    }
    wanted = " OR ".join(
        f"(family = '{family}' AND metric = '{metric}'" + (")" if metric == "family_drift" else " AND dimension = '')")
        for family, metric in OVERVIEW_METRICS
    )
    rows = storage.query(
        f"SELECT model, metric, dimension, window_start, value, flagged FROM {db}.window_stats FINAL "
        f"WHERE project = {{project:String}} AND model_version = '' AND ({wanted}) "
        "ORDER BY window_start DESC LIMIT {windows:UInt32} BY model, metric, dimension",
        {"project": project, "windows": windows},
    ).result_rows
    for model, metric, dimension, start, value, flagged in reversed(rows):
        summary = models.setdefault(str(model), ModelWindows(str(model)))
        point = Point(as_utc(start), float(value), bool(flagged))
        if metric == "family_drift":
            summary.families[str(dimension)] = point  # rows run oldest first: the last one stays
        else:
            summary.series.setdefault(str(metric), []).append(point)
    for model, metric, mean in _reference_means(storage, project):
        if model in models:
            models[model].reference[metric] = mean
    return sorted(models.values(), key=lambda m: m.model)


def _reference_means(storage: Storage, project: str) -> list[tuple[str, str, float]]:
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
        "AND s.window_start >= r.rs AND s.window_end <= r.re GROUP BY s.model, s.metric",
        {"project": project, "metrics": metrics},
    ).result_rows
    return [(str(model), str(metric), float(mean)) for model, metric, mean in rows]


def version_series(
    storage: Storage, project: str, model: str, metric: str, since: datetime | None, until: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Per model version (those written per version: latency and cost), one metric's windows."""
    clauses = ["project = {project:String}", "model = {model:String}", "model_version != ''",
               "metric = {metric:String}", "dimension = ''"]  # fmt: skip
    params: dict[str, Any] = {"project": project, "model": model, "metric": metric}
    if since:
        clauses.append("window_end > {since:DateTime64(3, 'UTC')}")
        params["since"] = ch_time(since)
    if until:
        clauses.append("window_start < {until:DateTime64(3, 'UTC')}")
        params["until"] = ch_time(until)
    rows = storage.query(
        f"SELECT model_version, window_start, value, sample_size FROM {storage.database}.window_stats FINAL "
        f"WHERE {' AND '.join(clauses)} ORDER BY model_version, window_start LIMIT 100000",
        params,
    ).result_rows
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for version, start, value, size in rows:
        out[str(version)].append({"window_start": as_utc(start), "value": float(value), "sample_size": int(size)})
    return dict(out)


def model_window_range(storage: Storage, project: str, model: str) -> tuple[datetime, datetime] | None:
    """The first and last window start of a model (the model page's default range)."""
    row = storage.query(
        f"SELECT min(window_start), max(window_end), count() FROM {storage.database}.window_stats "
        "WHERE project = {project:String} AND model = {model:String}",
        {"project": project, "model": model},
    ).result_rows[0]
    return None if not row[2] else (as_utc(row[0]), as_utc(row[1]))
