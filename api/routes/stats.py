"""``GET /v1/stats/{family}``: the statistics the workers wrote, per window or re-bucketed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from api.deps import ProjectDep, StorageDep
from api.errors import responses, unprocessable
from api.queries.stats import rebucket, stat_rows
from api.time_range import Since, Until, storable_range
from schemas.stats import Family, unknown_metric
from streams.storage.inferences import has_model

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=responses(401, 404, 422, 503))


class StatPoint(BaseModel):
    model: str
    model_version: str = ""
    window_start: datetime
    window_end: datetime
    metric: str
    dimension: str
    value: float
    p_value: float | None
    threshold: float | None
    flagged: bool
    sample_size: int
    details: dict[str, Any]


@router.get(
    "/{family}",
    response_model=list[StatPoint],
    summary="Per-window statistics of one family",
    description="422 for a metric the family does not have (naming those it has); 404 for a model the project "
    "never sent. A known model and metric without statistics in the range: an empty list.",
)
def get_stats(
    family: Annotated[Family, Path()],
    project: ProjectDep,
    storage: StorageDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    model_version: Annotated[
        str, Query(max_length=200, description="'' = all versions; latency and cost are also kept per version")
    ] = "",
    metric: Annotated[str | None, Query(max_length=100, description="e.g. latency_p95_ms, dataset_drift")] = None,
    dimension: Annotated[str | None, Query(max_length=300, description="feature/descriptor/tag; '' = model")] = None,
    since: Since = None,
    until: Until = None,
    interval: Annotated[int | None, Query(ge=1, le=31 * 86400, description="re-bucket to N seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[dict[str, Any]]:
    problem = None if metric is None else unknown_metric(family, metric)
    if problem is not None:
        raise unprocessable(["query", "metric"], problem)
    since, until = storable_range(since, until)
    rows = stat_rows(
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
    if not rows and model is not None and not has_model(storage, project, model):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no model {model!r} in project {project!r}: it sent no inferences"
        )
    return rebucket(rows, interval) if interval else rows
