"""The feedback explorer: the filters of ``GET /v1/feedback``, each item beside the inference it
rates, cursor paging, and the export in the API's three formats (same filters, same code)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse

from api.queries.feedback import CURSOR_PATTERN, FeedbackFilter, feedback_page
from api.routes.feedback import ExportFormat, export_feedback, feedback_filter
from api.ui.web import UiDep, UiRoute, parse_moment
from schemas.events import FeedbackKind, FeedbackSource

router = APIRouter(prefix="/ui", route_class=UiRoute)
PAGE_SIZE = 25
Text = Annotated[str, Query(max_length=200)]
Many = Annotated[list[str] | None, Query(max_length=20)]
_CURSOR = re.compile(CURSOR_PATTERN)


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


async def _filter(
    ui: UiDep, model: str, model_version: str, kind: list[str], source: str, since: str, until: str, tag: list[str]
) -> FeedbackFilter:
    """The API's filter from form fields ('' = not set), validated by the API's own rules."""
    try:
        kinds = [FeedbackKind(k) for k in kind if k]
        origin = FeedbackSource(source) if source else None
    except ValueError as exc:
        raise _unprocessable(f"kind/source: {exc}") from None
    tags = [t.strip() for t in tag if t.strip()]
    if any(":" not in t or t.startswith(":") for t in tags):
        raise _unprocessable("tag: write 'key:value' (the key up to the first ':')")
    return await feedback_filter(
        ui.project,
        model=model or None,
        model_version=model_version or None,
        kind=kinds,
        source=origin,
        since=parse_moment("since", since),
        until=parse_moment("until", until),
        tag=tags,
    )


@router.get("/feedback")
async def explorer(
    ui: UiDep,
    model: Text = "",
    model_version: Text = "",
    kind: Many = None,
    source: Text = "",
    since: Text = "",
    until: Text = "",
    tag: Many = None,
    cursor: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    if cursor and not _CURSOR.match(cursor):
        raise _unprocessable("cursor: pass the next page's cursor unchanged")
    flt = await _filter(ui, model, model_version, kind or [], source, since, until, tag or [])
    items, next_cursor = await asyncio.to_thread(
        feedback_page, ui.runtime.storage, flt, limit=PAGE_SIZE, cursor=cursor or None
    )
    params = [
        ("model", model),
        ("model_version", model_version),
        *(("kind", k) for k in kind or []),
        ("source", source),
        ("since", since),
        ("until", until),
        *(("tag", t) for t in tag or []),
    ]
    query = urlencode([(k, v) for k, v in params if v])
    return ui.render(
        "feedback.html",
        items=items,
        next_cursor=next_cursor,
        query=query,
        first_page=not cursor,
        kinds=[k.value for k in FeedbackKind],
        sources=[s.value for s in FeedbackSource],
        form={
            "model": model,
            "model_version": model_version,
            "kind": kind or [],
            "source": source,
            "since": since,
            "until": until,
            "tag": ", ".join(tag or []),
        },
        formats=[f.value for f in ExportFormat],
    )


@router.get("/feedback/export")
async def export(
    ui: UiDep,
    format: Annotated[ExportFormat, Query()] = ExportFormat.JSONL,
    model: Text = "",
    model_version: Text = "",
    kind: Many = None,
    source: Text = "",
    since: Text = "",
    until: Text = "",
    tag: Many = None,
) -> StreamingResponse:
    flt = await _filter(ui, model, model_version, kind or [], source, since, until, tag or [])
    return export_feedback(flt, ui.runtime.storage, ui.actor, format)
