"""Feedback queries and the streamed export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from api.deps import ActorDep, ProjectDep, StorageDep
from api.errors import responses
from api.queries.feedback import CURSOR_PATTERN, FeedbackFilter, feedback_page, iter_feedback
from api.responses import FeedbackPage
from api.time_range import Since, Until, storable_range
from schemas.events import FeedbackKind, FeedbackSource
from streams.storage import audit

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], responses=responses(401, 503))


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    CHAT = "chat"  # chat fine-tuning JSONL: prompt + corrected response


_CSV_COLUMNS = [
    "feedback_id",
    "inference_id",
    "timestamp",
    "kind",
    "value",
    "name",
    "text",
    "source",
    "user_id",
    "model",
    "model_version",
    "prompt",
    "response",
]


Model = Annotated[str | None, Query(max_length=200, description="only feedback on this model's inferences")]
Version = Annotated[str | None, Query(max_length=200)]
Kinds = Annotated[list[FeedbackKind] | None, Query()]
Source = Annotated[FeedbackSource | None, Query()]
TagFilter = Annotated[
    list[Annotated[str, StringConstraints(pattern=r"^[^:]+:")]] | None,
    Query(description="inference tag filter 'key:value' (the key up to the first ':'), repeatable"),
]


async def feedback_filter(
    project: ProjectDep,
    model: Model = None,
    model_version: Version = None,
    kind: Kinds = None,
    source: Source = None,
    since: Since = None,
    until: Until = None,
    tag: TagFilter = None,
) -> FeedbackFilter:
    """The filters shared by the listing and the export, validated once."""
    tags = dict(item.split(":", 1) for item in tag or [])  # the pattern guarantees a key and a ':'
    since, until = storable_range(since, until)
    return FeedbackFilter(
        project=project,
        model=model,
        model_version=model_version,
        kinds=[k.value for k in kind or []],
        source=source.value if source else None,
        since=since,
        until=until,
        tags=tags,
    )


FilterDep = Annotated[FeedbackFilter, Depends(feedback_filter)]


@router.get("", response_model=FeedbackPage, summary="List feedback, newest first, with its inference")
def list_feedback(
    flt: FilterDep,
    storage: StorageDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the previous page's `next_cursor`, unchanged")
    ] = None,
) -> dict[str, Any]:
    items, next_cursor = feedback_page(storage, flt, limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    inference = item["inference"] or {}
    return {
        **{key: item[key] for key in _CSV_COLUMNS[:9]},
        "timestamp": item["timestamp"].isoformat(),
        "model": inference.get("model", ""),
        "model_version": inference.get("model_version", ""),
        "prompt": inference.get("prompt", ""),
        "response": inference.get("response", ""),
    }


def _jsonl(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for item in items:
        yield orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z)


def _chat(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for item in items:
        inference = item["inference"]
        if item["kind"] != "correction" or not inference or not inference["prompt"]:
            continue
        messages = [
            {"role": "user", "content": inference["prompt"]},
            {"role": "assistant", "content": item["text"]},
        ]
        yield orjson.dumps({"messages": messages}, option=orjson.OPT_APPEND_NEWLINE)


def _csv(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS)
    writer.writeheader()
    for count, item in enumerate(items, 1):
        writer.writerow(_flat(item))
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


_EXPORTERS = {
    ExportFormat.JSONL: (_jsonl, "application/x-ndjson"),
    ExportFormat.CHAT: (_chat, "application/x-ndjson"),
    ExportFormat.CSV: (_csv, "text/csv; charset=utf-8"),
}


@router.get(
    "/export",
    summary="Stream every matching feedback item (jsonl, csv, or chat fine-tuning jsonl from corrections)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
def export_feedback(
    flt: FilterDep,
    storage: StorageDep,
    actor: ActorDep,
    format: ExportFormat = ExportFormat.JSONL,
) -> StreamingResponse:
    encode, media_type = _EXPORTERS[format]
    audit.record(storage, actor, "feedback.export", project=flt.project, details={"format": format.value})
    extension = "csv" if format is ExportFormat.CSV else "jsonl"
    return StreamingResponse(
        encode(iter_feedback(storage, flt)),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="feedback-{flt.project}.{extension}"'},
    )
