"""Reading ``window_stats`` back, optionally re-bucketed to a coarser interval."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.stats import ADDITIVE_METRICS
from streams.storage import Storage, as_utc, ch_time


def overlapping(clauses: list[str], params: dict[str, Any], since: datetime | None, until: datetime | None) -> None:
    """Add the bounds of windows that overlap ``[since, until)`` to a ``window_stats`` query."""
    if since:
        clauses.append("window_end > {since:DateTime64(3, 'UTC')}")
        params["since"] = ch_time(since)
    if until:
        clauses.append("window_start < {until:DateTime64(3, 'UTC')}")
        params["until"] = ch_time(until)


def stat_rows(
    storage: Storage,
    project: str,
    family: str,
    *,
    model: str | None,
    model_version: str,
    metric: str | None,
    dimension: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    clauses = ["project = {project:String}", "family = {family:String}", "model_version = {model_version:String}"]
    params: dict[str, Any] = {"project": project, "family": family, "limit": limit, "model_version": model_version}
    for name, value in (("model", model), ("metric", metric), ("dimension", dimension)):
        if value is not None:
            clauses.append(f"{name} = {{{name}:String}}")
            params[name] = value
    overlapping(clauses, params, since, until)
    rows = storage.rows(
        "SELECT model, model_version, window_start, window_end, metric, "
        "dimension, value, p_value, threshold, flagged, sample_size, "
        f"details FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "ORDER BY window_start, model, metric, dimension LIMIT {limit:UInt32}",
        params,
    )
    for row in rows:
        row["window_start"], row["window_end"] = as_utc(row["window_start"]), as_utc(row["window_end"])
        row["flagged"] = bool(row["flagged"])
        row["details"] = orjson.loads(row["details"]) if row["details"] else {}
    return rows


def rebucket(rows: list[dict[str, Any]], interval_seconds: int) -> list[dict[str, Any]]:
    """Merge windows into ``interval_seconds`` buckets: sums for additive metrics, sample-size-weighted
    means otherwise (percentiles averaged this way are an approximation, stated in the API docs),
    ``flagged`` if any window was, the smallest p-value."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        epoch = int(row["window_start"].timestamp())
        bucket = datetime.fromtimestamp(epoch - epoch % interval_seconds, UTC)
        groups[(bucket, row["model"], row["model_version"], row["metric"], row["dimension"])].append(row)
    out = []
    for (bucket, model, version, metric, dimension), members in sorted(groups.items(), key=lambda item: item[0]):
        weights = [max(m["sample_size"], 1) for m in members]
        if metric in ADDITIVE_METRICS:  # counts and sums add up; the rest: a mean weighted by sample size
            value = sum(m["value"] for m in members)
        else:
            value = sum(m["value"] * w for m, w in zip(members, weights, strict=True)) / sum(weights)
        p_values = [m["p_value"] for m in members if m["p_value"] is not None]
        out.append(
            {
                "model": model,
                "model_version": version,
                "window_start": bucket,
                "window_end": bucket + timedelta(seconds=interval_seconds),
                "metric": metric,
                "dimension": dimension,
                "value": value,
                "p_value": min(p_values) if p_values else None,
                "threshold": members[-1]["threshold"],
                "flagged": any(m["flagged"] for m in members),
                "sample_size": sum(m["sample_size"] for m in members),
                "details": {"windows": len(members)},
            }
        )
    return out
