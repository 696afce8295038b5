"""``window_stats`` rows as the API returns them, optionally re-bucketed to a coarser interval."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.stats import ADDITIVE_METRICS, StatRow
from streams.storage import Storage, window_stats


def point(row: StatRow) -> dict[str, Any]:
    """A statistic as ``GET /v1/stats`` returns it (and ``rebucket`` takes it)."""
    return {
        "model": row.model,
        "model_version": row.model_version,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "metric": row.metric,
        "dimension": row.dimension,
        "value": row.value,
        "p_value": row.p_value,
        "threshold": row.threshold,
        "flagged": row.flagged,
        "sample_size": row.sample_size,
        "details": row.details,
    }


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
    rows = window_stats.read(
        storage,
        project,
        family,
        model=model,
        model_version=model_version,
        metric=metric,
        dimension=dimension,
        since=since,
        until=until,
        limit=limit,
    )
    return [point(row) for row in rows]


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
