"""``GET /v1/stats/{family}``: the statistics the workers wrote, per window or re-bucketed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.deps import ProjectDep, StorageDep
from api.errors import responses
from api.queries.stats import rebucket, stat_rows
from api.time_range import Since, Until, storable_range

router = APIRouter(prefix="/v1/stats", tags=["stats"], responses=responses(401, 503))


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


@router.get("/{family}", response_model=list[StatPoint], summary="Per-window statistics of one family")
def get_stats(
    family: Annotated[Literal["drift", "quality", "cost", "latency"], Path()],
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
    return rebucket(rows, interval) if interval else rows
