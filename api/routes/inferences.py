"""The calls: a filtered, cursor-paged listing and one call with all of its feedback."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import StringConstraints

from api.deps import ProjectDep, RuntimeDep, StorageDep
from api.errors import problem, responses, unprocessable, unprocessable_all
from api.queries.feedback import FeedbackFilter, feedback_page
from api.queries.windows import window_key
from api.responses import CallPage, InferenceDetail
from api.time_range import IsoDatetime, Since, Until, check_moment, storable_range
from schemas.events import FeedbackKind
from streams.storage.inferences import CURSOR_PATTERN, CallFilter, CallSort, call_page, inference

router = APIRouter(prefix="/v1/inferences", tags=["inferences"], responses=responses(401, 404, 503))


class CallStatus(StrEnum):
    OK = "ok"
    ERROR = "error"


class CallOrder(StrEnum):
    NEWEST = "newest"
    LATENCY = "latency"  # slowest first
    COST = "cost"  # costliest first


ORDER_SORTS: dict[CallOrder, CallSort] = {
    CallOrder.NEWEST: "newest",
    CallOrder.LATENCY: "latency",
    CallOrder.COST: "cost",
}
Name = Annotated[str | None, Query(min_length=1, max_length=200)]
Amount = Annotated[float | None, Query(ge=0, le=1e15, description="a minimum must not be above its maximum")]
TagFilter = Annotated[
    list[Annotated[str, StringConstraints(pattern=r"^[^:]+:")]] | None,
    Query(description="tag filter 'key:value' (the key up to the first ':'), repeatable; all must match"),
]


async def call_filter(
    project: ProjectDep,
    runtime: RuntimeDep,
    model: Name = None,
    model_version: Name = None,
    since: Since = None,
    until: Until = None,
    window_start: Annotated[
        IsoDatetime | None,
        Query(
            description="only the model's window that contains this moment: needs `model`, and must overlap "
            "`since` .. `until` when given, else 422"
        ),
    ] = None,
    status: Annotated[CallStatus | None, Query()] = None,
    error_type: Annotated[str | None, Query(max_length=200, description="implies nothing about status")] = None,
    tag: TagFilter = None,
    min_latency_ms: Amount = None,
    max_latency_ms: Amount = None,
    min_cost_usd: Amount = None,
    max_cost_usd: Amount = None,
    has_feedback: Annotated[bool | None, Query(description="true: calls with feedback; false: without")] = None,
    feedback_kind: Annotated[
        list[FeedbackKind] | None,
        Query(description="calls with feedback of these kinds (without, if has_feedback=false)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="case-insensitive text in the prompt or the response"),
    ] = None,
) -> CallFilter:
    """The listing's filters, validated once: every range ordered, a window only within a model."""
    problems = [
        problem(["query", low], f"'{low}' must not be above '{high}'")
        for low, high, a, b in (
            ("min_latency_ms", "max_latency_ms", min_latency_ms, max_latency_ms),
            ("min_cost_usd", "max_cost_usd", min_cost_usd, max_cost_usd),
        )
        if a is not None and b is not None and a > b
    ]
    if window_start is not None and model is None:
        problems.append(problem(["query", "window_start"], "'window_start' needs 'model': windows are per model"))
    if problems:
        raise unprocessable_all(problems)
    since, until = storable_range(since, until)
    if window_start is not None and model is not None:
        check_moment(["query", "window_start"], window_start)
        key = window_key(project, model, window_start, runtime.settings.window_seconds)
        since = max(since, key.start) if since else key.start
        until = min(until, key.end) if until else key.end
        if since >= until:
            raise unprocessable(["query", "window_start"], "the window lies outside 'since' .. 'until'")
    return CallFilter(
        project=project,
        model=model,
        model_version=model_version,
        since=since,
        until=until,
        status=status.value if status else None,
        error_type=error_type,
        tags=tuple(sorted(dict(item.split(":", 1) for item in tag or []).items())),
        min_latency_ms=min_latency_ms,
        max_latency_ms=max_latency_ms,
        min_cost_usd=min_cost_usd,
        max_cost_usd=max_cost_usd,
        has_feedback=has_feedback,
        feedback_kinds=tuple(sorted({kind.value for kind in feedback_kind or []})),
        text=q,
    )


CallFilterDep = Annotated[CallFilter, Depends(call_filter)]


@router.get("", response_model=CallPage, summary="List calls, newest (or slowest, costliest) first")
def list_inferences(
    flt: CallFilterDep,
    storage: StorageDep,
    sort: CallOrder = CallOrder.NEWEST,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the previous page's `next_cursor`, unchanged")
    ] = None,
) -> CallPage:
    try:
        page = call_page(storage, flt, sort=ORDER_SORTS[sort], limit=limit, cursor=cursor)
    except ValueError as exc:
        raise unprocessable(["query", "cursor"], str(exc)) from None
    return CallPage.model_validate({"items": [asdict(call) for call in page.items], "next_cursor": page.next_cursor})


@router.get("/{event_id}", response_model=InferenceDetail, summary="An inference and all of its feedback")
def get_inference(
    event_id: Annotated[str, Path(min_length=1, max_length=128)], project: ProjectDep, storage: StorageDep
) -> dict[str, Any]:
    call = inference(storage, project, event_id)
    if call is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inference {event_id!r} in project {project!r}")
    feedback, _ = feedback_page(storage, FeedbackFilter(project=project, inference_id=event_id), limit=1000)
    return {**asdict(call), "feedback": feedback}
