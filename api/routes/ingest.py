"""``POST /v1/inferences`` and ``POST /v1/feedback``: validate, then hand to the publisher.

A request is all or nothing: any invalid item fails the whole request with a 422 that names each bad
item's index and field, so a client can fix and resend the batch (ids make the resend idempotent).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.deps import ProjectDep, ServicesDep
from api.errors import responses, unprocessable
from api.models import Accepted
from api.services import Services
from schemas.events import FeedbackEvent, InferenceEvent

router = APIRouter(prefix="/v1", tags=["ingest"], responses=responses(400, 401, 403, 413, 422, 503))

_INFERENCES = TypeAdapter(list[InferenceEvent])
_FEEDBACK = TypeAdapter(list[FeedbackEvent])


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Documents the body (one event or a list) while the route reads raw bytes for speed."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [ref, {"type": "array", "items": ref}]}}},
        }
    }


async def _read_items(request: Request, project: str, max_bytes: int, max_items: int) -> list[Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body of {declared} bytes exceeds {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    try:
        parsed = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not valid JSON: {exc}") from exc
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise unprocessable(["body"], "empty list: send at least one event")
    if len(items) > max_items:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"batch of {len(items)} events exceeds the limit of {max_items}"
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise unprocessable(["body", index], "each event must be a JSON object", "object_type")
        claimed = item.setdefault("project", project)
        if claimed != project:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"item {index}: this API key belongs to project {project!r} and cannot write to {claimed!r}",
            )
    return items


def _validate(adapter: TypeAdapter[list[Any]], items: list[Any]) -> list[Any]:
    try:
        return adapter.validate_python(items)
    except ValidationError as exc:
        detail = [
            {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc


async def _accept(
    request: Request, project: str, services: Services, adapter: TypeAdapter[list[Any]], kind: str
) -> Accepted:
    settings = services.settings
    items = await _read_items(request, project, settings.max_body_bytes, settings.max_batch_items)
    events = _validate(adapter, items)
    if kind == "inference":
        await services.publisher.publish_inferences(events)
        return Accepted(accepted=len(events), ids=[event.event_id for event in events])
    await services.publisher.publish_feedback(events)
    return Accepted(accepted=len(events), ids=[event.feedback_id for event in events])


@router.post(
    "/inferences",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    openapi_extra=_body_schema(InferenceEvent),
    summary="Ingest one inference event or a list of them",
)
async def post_inferences(request: Request, project: ProjectDep, services: ServicesDep) -> Accepted:
    return await _accept(request, project, services, _INFERENCES, "inference")


@router.post(
    "/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    openapi_extra=_body_schema(FeedbackEvent),
    summary="Ingest one feedback event or a list of them",
)
async def post_feedback(request: Request, project: ProjectDep, services: ServicesDep) -> Accepted:
    return await _accept(request, project, services, _FEEDBACK, "feedback")
