"""The models a project has sent, with counts: the entry point for a dashboard or the demo summary."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from api.deps import ProjectDep, RuntimeDep, StorageDep
from api.errors import responses
from api.queries.compare import fetch_version
from api.time_range import storable, storable_range
from streams.stats.compare import MetricComparison, compare_versions
from streams.storage.feedback import count_by_model
from streams.storage.inferences import model_counts

router = APIRouter(prefix="/v1/models", tags=["models"], responses=responses(401, 503))


class ModelInfo(BaseModel):
    model: str
    versions: list[str]
    inferences: int
    errors: int
    feedback: int
    first_seen: str
    last_seen: str


@router.get("", response_model=list[ModelInfo], summary="Models with inference and feedback counts")
def list_models(project: ProjectDep, storage: StorageDep) -> list[dict[str, Any]]:
    feedback = count_by_model(storage, project)
    return [
        {
            "model": m.model,
            "versions": m.versions,
            "inferences": m.inferences,
            "errors": m.errors,
            "feedback": feedback.get(m.model, 0),
            "first_seen": m.first_seen.isoformat(),
            "last_seen": m.last_seen.isoformat(),
        }
        for m in model_counts(storage, project)
    ]


@pydantic_dataclass(frozen=True)
class MetricComparisonOut(MetricComparison):  # the comparison's record under the API's name (``asdict`` in)
    pass


class VersionComparison(BaseModel):
    model: str
    a: str
    b: str
    since: datetime
    until: datetime
    events_a: int
    events_b: int
    metrics: list[MetricComparisonOut]


Version = Annotated[str, Query(min_length=1, max_length=200)]


@router.get(
    "/{model}/compare",
    response_model=VersionComparison,
    responses=responses(404, 422),
    summary="Two model versions side by side, with the significance of each difference",
)
def compare(
    model: Annotated[str, Path(max_length=200)],
    a: Version,
    b: Version,
    since: Annotated[datetime, Query(description="start of the range (inclusive)")],
    project: ProjectDep,
    runtime: RuntimeDep,
    until: Annotated[datetime | None, Query(description="end of the range (exclusive); default now")] = None,
) -> dict[str, Any]:
    """Every metric of version ``a`` (the reference) and ``b`` over [since, until): latency, error rate,
    cost and tokens per call, thumbs-up rate and ratings from feedback, and drift of each family of ``b``
    against ``a``; each with the p-value of the tests the window statistics use. A canary or A/B rollout
    is judged on a bounded sample of each version (``4 x LOOPWATCH_DRIFT_SAMPLE_ROWS`` events)."""
    if until is not None:
        storable_range(since, until)  # 422 when since >= until
    # Without `until` the range ends now: a `since` in the future is an empty range (404 below).
    start, end = storable(since), storable(until or datetime.now(UTC))
    limit = runtime.settings.drift_sample_rows * 4
    data = {}
    for name, version in (("a", a), ("b", b)):
        found = fetch_version(runtime.storage, project, model, version, start, end, limit)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"model {model!r} has no events of version {version!r} ({name}) in the range"
            )
        data[name] = found
    metrics = compare_versions(data["a"], data["b"])
    return {
        "model": model,
        "a": a,
        "b": b,
        "since": start,
        "until": end,
        "events_a": data["a"].events,
        "events_b": data["b"].events,
        "metrics": [asdict(m) for m in metrics],
    }
