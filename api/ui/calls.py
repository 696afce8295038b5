"""The calls explorer: the filters of ``GET /v1/inferences`` as query parameters named like the API's
(other pages link here, e.g. ``/ui/calls?model=M&since=…&until=…&status=error``), cursor paging, and
one call with its prompt, response, numbers, tags and every feedback."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import ValidationError

from api.queries.feedback import FeedbackFilter, feedback_page
from api.queries.windows import window_key
from api.routes.inferences import ORDER_SORTS, CallOrder, CallStatus, call_filter
from api.ui.web import UiDep, UiRoute, parse_moment
from schemas.events import FeedbackKind
from streams.storage import evaluations
from streams.storage.inferences import CallFilter, call_page, inference
from streams.storage.queues import QueueStore

router = APIRouter(prefix="/ui", route_class=UiRoute)
PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=200)]
Many = Annotated[list[str] | None, Query(max_length=20)]
FILTERS = (
    "model",
    "model_version",
    "since",
    "until",
    "window_start",
    "status",
    "error_type",
    "min_latency_ms",
    "max_latency_ms",
    "min_cost_usd",
    "max_cost_usd",
    "has_feedback",
    "q",
    "sort",
)


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def _amount(name: str, text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise _unprocessable(f"{name}: expected a number, e.g. 250") from None
    if not math.isfinite(value) or value < 0:
        raise _unprocessable(f"{name}: expected a number of 0 or more")
    return value


E = TypeVar("E", CallStatus, CallOrder, FeedbackKind)


def _choice(name: str, kind: type[E], text: str) -> E | None:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise _unprocessable(f"{name}: one of {', '.join(item.value for item in kind)}") from None


async def _filter(ui: UiDep, form: dict[str, str], kinds: list[str], tags: list[str]) -> CallFilter:
    """The API's filter from query fields ('' = not set), validated by the API's own rules."""
    tags = [t.strip() for t in tags if t.strip()]
    if any(":" not in t or t.startswith(":") for t in tags):
        raise _unprocessable("tag: write 'key:value' (the key up to the first ':')")
    if form["has_feedback"] not in ("", "true", "false"):
        raise _unprocessable("has_feedback: true or false")
    feedback_kinds = [kind for k in kinds if k and (kind := _choice("feedback_kind", FeedbackKind, k))]
    try:
        return await call_filter(
            ui.project,
            ui.runtime,
            model=form["model"] or None,
            model_version=form["model_version"] or None,
            since=parse_moment("since", form["since"]),
            until=parse_moment("until", form["until"]),
            window_start=parse_moment("window_start", form["window_start"]),
            status=_choice("status", CallStatus, form["status"]),
            error_type=form["error_type"] or None,
            tag=tags,
            min_latency_ms=_amount("min_latency_ms", form["min_latency_ms"]),
            max_latency_ms=_amount("max_latency_ms", form["max_latency_ms"]),
            min_cost_usd=_amount("min_cost_usd", form["min_cost_usd"]),
            max_cost_usd=_amount("max_cost_usd", form["max_cost_usd"]),
            has_feedback=None if not form["has_feedback"] else form["has_feedback"] == "true",
            feedback_kind=feedback_kinds,
            q=form["q"] or None,
        )
    except ValidationError as exc:  # pragma: no cover - the fields above are checked one by one
        raise _unprocessable(str(exc)) from None


@router.get("/calls")
async def explorer(
    ui: UiDep,
    model: Text = "",
    model_version: Text = "",
    since: Text = "",
    until: Text = "",
    window_start: Text = "",
    status: Text = "",
    error_type: Text = "",
    tag: Many = None,
    min_latency_ms: Text = "",
    max_latency_ms: Text = "",
    min_cost_usd: Text = "",
    max_cost_usd: Text = "",
    has_feedback: Text = "",
    feedback_kind: Many = None,
    q: Text = "",
    sort: Text = "",
    cursor: Annotated[str, Query(max_length=1200)] = "",
) -> Response:
    form = {
        "model": model,
        "model_version": model_version,
        "since": since,
        "until": until,
        "window_start": window_start,
        "status": status,
        "error_type": error_type,
        "min_latency_ms": min_latency_ms,
        "max_latency_ms": max_latency_ms,
        "min_cost_usd": min_cost_usd,
        "max_cost_usd": max_cost_usd,
        "has_feedback": has_feedback,
        "q": q,
        "sort": sort,
    }
    order = _choice("sort", CallOrder, sort) or CallOrder.NEWEST
    flt = await _filter(ui, form, feedback_kind or [], tag or [])
    try:
        page = await asyncio.to_thread(
            call_page, ui.runtime.storage, flt, sort=ORDER_SORTS[order], limit=PAGE_SIZE, cursor=cursor or None
        )
    except ValueError as exc:
        raise _unprocessable(f"cursor: {exc}") from None
    params = [
        *((name, form[name]) for name in FILTERS),
        *(("tag", t) for t in tag or []),
        *(("feedback_kind", k) for k in feedback_kind or []),
    ]
    return ui.render(
        "calls.html",
        calls=page.items,
        next_cursor=page.next_cursor,
        query=[(name, value) for name, value in params if value],
        first_page=not cursor,
        form={**form, "tag": ", ".join(tag or []), "feedback_kind": feedback_kind or []},
        kinds=[k.value for k in FeedbackKind],
        sorts=[s.value for s in CallOrder],
    )


@router.get("/calls/{event_id}")
async def call_page_view(
    event_id: Annotated[str, Path(min_length=1, max_length=128)], ui: UiDep, queued: Text = ""
) -> Response:
    storage = ui.runtime.storage
    call = await asyncio.to_thread(inference, storage, ui.project, event_id)
    if call is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {event_id!r} in project {ui.project!r}")
    feedback, _ = await asyncio.to_thread(
        feedback_page, storage, FeedbackFilter(project=ui.project, inference_id=event_id), limit=1000
    )
    window = window_key(ui.project, call.model, call.timestamp, ui.runtime.settings.window_seconds)
    queues = await asyncio.to_thread(QueueStore(storage).all, ui.project)  # for "add to queue"
    evaluated = await asyncio.to_thread(evaluations.of_event, storage, ui.project, event_id)
    return ui.render(
        "call.html", call=call, feedback=feedback, window=window, queues=queues, queued=queued, evaluations=evaluated
    )
