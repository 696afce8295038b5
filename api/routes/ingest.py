"""``POST /v1/inferences`` and ``POST /v1/feedback``: validate, then hand to the publisher.

A request is all or nothing: any invalid item fails the whole request with a 422 that names each bad
item's index and field, so a client can fix and resend the batch (ids make the resend idempotent).
The one exception is an event ClickHouse itself refuses after validation (e.g. a table constraint):
it becomes a dead letter, the batch's other events are stored, and the 422 names it with the reason.

Bodies are decoded by the msgspec fast path (``schemas.records``); a body it cannot take goes through
the pydantic models, which accept what the fast path is too strict for and word every 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from operator import attrgetter
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ValidationError

from api.deps import IngestProjectDep, PublisherDep, RuntimeDep
from api.errors import problem, responses, unprocessable, unprocessable_all
from api.responses import Accepted
from schemas.events import EventTimeRules, FeedbackEvent, InferenceEvent
from schemas.problems import validation_problems
from streams import metrics
from streams.bus import EventsRefused, Kind, Publisher
from streams.decode import FEEDBACK, INFERENCES, EventKind, EventTimePolicy
from streams.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["ingest"], responses=responses(400, 401, 403, 413, 422, 503))


# Where accepted events of each kind go (the runtime's publisher: embedded bus or Kafka).
_PUBLISH: dict[Kind, Callable[[Publisher], Callable[[Any], Awaitable[None]]]] = {
    "inference": attrgetter("publish_inferences"),
    "feedback": attrgetter("publish_feedback"),
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Documents the body (one event or a list) while the route reads raw bytes for speed."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1}]}}
            },
        }
    }


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with a 413 past ``max_bytes`` (declared or streamed); OTLP shares it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body of {declared} bytes exceeds {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_count(count: int, max_items: int) -> None:
    if not count:
        raise unprocessable(["body"], "empty list: send at least one event")
    if count > max_items:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"batch of {count} events exceeds the limit of {max_items}"
        )


def _foreign_project(index: int, project: str, claimed: Any) -> HTTPException:
    return HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"item {index}: this API key belongs to project {project!r} and cannot write to {claimed!r}",
    )


def _fast_records(
    kind: EventKind[Any, Any], body: bytes, project: str, max_items: int, rules: EventTimeRules
) -> list[Any] | None:
    records = kind.fast.decode(body, rules)
    if records is None:
        return None
    _check_count(len(records), max_items)
    for index, record in enumerate(records):
        if not record.project:
            record.project = project
        elif record.project != project:
            raise _foreign_project(index, project, record.project)
    return records


def _slow_records(
    kind: EventKind[Any, Any], body: bytes, project: str, max_items: int, rules: EventTimeRules
) -> list[Any]:
    """The pydantic path: coercions the fast path does not do, and a precise 4xx for everything else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not valid JSON: {exc}") from exc
    items = parsed if isinstance(parsed, list) else [parsed]
    _check_count(len(items), max_items)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise unprocessable(["body", index], "each event must be a JSON object", "object_type")
        claimed = item.setdefault("project", project)
        if claimed != project:
            raise _foreign_project(index, project, claimed)
    try:
        return kind.validate_all(items, rules)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_problems(exc, ["body"])) from exc


def _refused(ids: list[str], exc: EventsRefused) -> HTTPException:
    """A 422 naming each event storage refused (now a dead letter); the batch's other events are stored."""
    return unprocessable_all(
        [
            problem(
                ["body", index],
                f"{exc.reasons[event_id]} (kept as a dead letter; the others are stored)",
                "refused_by_storage",
            )
            for index, event_id in enumerate(ids)
            if event_id in exc.reasons
        ]
    )


async def _accept(
    request: Request, project: str, runtime: Runtime, publisher: Publisher, kind: EventKind[Any, Any]
) -> Response:
    settings = runtime.settings
    body = await read_body(request, settings.max_body_bytes)
    rules = EventTimePolicy.of(settings).rules()
    records = _fast_records(kind, body, project, settings.max_batch_items, rules)
    if records is None:
        records = _slow_records(kind, body, project, settings.max_batch_items, rules)
    ids = [getattr(record, kind.id_field) for record in records]
    try:
        await _PUBLISH[kind.name](publisher)(records)
    except EventsRefused as exc:  # storage refused these events for their content: resending cannot help
        raise _refused(ids, exc) from exc
    metrics.events_accepted(kind.name, "http", len(ids))
    # Accepted's JSON, without a pydantic round trip of every id
    return Response(
        orjson.dumps({"accepted": len(ids), "ids": ids}), status.HTTP_202_ACCEPTED, media_type="application/json"
    )


@router.post(
    "/inferences",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    openapi_extra=_body_schema(InferenceEvent),
    summary="Ingest one inference event or a list of them",
)
async def post_inferences(
    request: Request, project: IngestProjectDep, runtime: RuntimeDep, publisher: PublisherDep
) -> Response:
    return await _accept(request, project, runtime, publisher, INFERENCES)


@router.post(
    "/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    openapi_extra=_body_schema(FeedbackEvent),
    summary="Ingest one feedback event or a list of them",
)
async def post_feedback(
    request: Request, project: IngestProjectDep, runtime: RuntimeDep, publisher: PublisherDep
) -> Response:
    return await _accept(request, project, runtime, publisher, FEEDBACK)


# Which ingest endpoint a request reached, for the rejection metric (``api.app``'s error handler).
ENDPOINT_KINDS: dict[object, Kind] = {post_inferences: INFERENCES.name, post_feedback: FEEDBACK.name}
