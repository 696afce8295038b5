"""Review queues: the list with progress, a queue's page (per-reviewer counts, agreement, who reviewed
what), the keyboard-first review page, and "add to queue" from a call's page. The review page takes
the next item through the API's own code (``api.routes.queues``): held for the reviewer, reviewed or
skipped, last review undone; each review is feedback (source ``annotator``, the reviewer's name)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status

from api.deps import publisher_of
from api.routes.queues import (
    add_items,
    found,
    queue_out,
    review_item,
    reviewer_name,
    skip_item,
    submit,
    undo_last,
)
from api.ui.web import Ui, UiManageDep, UiQueuesDep, UiReviewDep, UiRoute, first, quote_path, redirect
from schemas.queues import QUEUE_ID_PATTERN, Queue, ScoreValue
from streams.keys import ApiKey
from streams.storage.queues import QueueStore

router = APIRouter(prefix="/ui", route_class=UiRoute)
QueuePath = Annotated[str, Path(pattern=QUEUE_ID_PATTERN)]
RECENT_REVIEWS = 100


def _reviewer(ui: Ui) -> str:
    key: ApiKey | None = getattr(ui.request.state, "ui_key", None)
    assert key is not None  # UiReviewDep checked it
    return reviewer_name(key)


def _reviewer_only(ui: Ui) -> bool:
    key: ApiKey | None = getattr(ui.request.state, "ui_key", None)
    return key is not None and not key.allows("read")


@router.get("/queues")
async def queues_page(ui: UiQueuesDep) -> Response:
    store = QueueStore(ui.runtime.storage)

    def overview() -> list[dict[str, Any]]:
        return [queue_out(store, queue) for queue in store.all(ui.project)]

    return ui.render("queues.html", queues=await asyncio.to_thread(overview), reviewer_only=_reviewer_only(ui))


@router.get("/queues/{queue_id}")
async def queue_page(ui: UiQueuesDep, queue_id: QueuePath) -> Response:
    store = QueueStore(ui.runtime.storage)

    def load() -> tuple[dict[str, Any], list[Any]]:
        queue = found(store, ui.project, queue_id)
        return queue_out(store, queue), store.reviews(queue)[-RECENT_REVIEWS:][::-1]

    out, reviews = await asyncio.to_thread(load)
    return ui.render("queue.html", q=out, reviews=reviews, reviewer_only=_reviewer_only(ui))


@router.get("/queues/{queue_id}/review")
async def review_page(ui: UiReviewDep, queue_id: QueuePath) -> Response:
    storage = ui.runtime.storage
    store = QueueStore(storage)
    reviewer = _reviewer(ui)

    def load() -> tuple[Queue, dict[str, Any] | None, Any]:
        queue = found(store, ui.project, queue_id)
        return queue, review_item(storage, store, queue, reviewer), store.progress(queue)

    queue, item, progress = await asyncio.to_thread(load)
    return ui.render(
        "review.html",
        queue=queue,
        item=item,
        progress=progress,
        reviewer=reviewer,
        reviewer_only=_reviewer_only(ui),
        last=await asyncio.to_thread(store.last_review, queue, reviewer),
    )


def _scores(queue: Queue, fields: dict[str, list[str]]) -> dict[str, ScoreValue]:
    """The form's answers as the API takes them (numbers for ranges, true/false for booleans)."""
    scores: dict[str, ScoreValue] = {}
    for field in queue.fields:
        raw = first(fields, f"field:{field.name}")
        if field.type in ("correction", "comment"):
            raw = (fields.get(f"field:{field.name}") or [""])[0]  # text as typed, spaces and all
        if raw == "":
            continue
        if field.type == "range":
            try:
                scores[field.name] = float(raw)
            except ValueError:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field.name}: a number") from None
        elif field.type == "boolean":
            scores[field.name] = raw == "true"
        else:
            scores[field.name] = raw
    return scores


def _problem_text(exc: HTTPException) -> list[str]:
    detail = exc.detail
    if isinstance(detail, list):
        return [f"{item['loc'][-1]}: {item['msg']}" for item in detail if isinstance(item, dict)]
    return [str(detail)]


@router.post("/queues/{queue_id}/review")
async def review_post(ui: UiReviewDep, queue_id: QueuePath) -> Response:
    fields = await ui.form()
    store = QueueStore(ui.runtime.storage)
    queue = await asyncio.to_thread(found, store, ui.project, queue_id)
    reviewer, item, action = _reviewer(ui), first(fields, "item"), first(fields, "action")
    try:
        if action == "undo":
            await asyncio.to_thread(undo_last, store, queue, reviewer)
        elif action == "skip":
            await skip_item(ui.runtime, queue, item, reviewer)
        elif action == "submit":
            await submit(ui.runtime, publisher_of(ui.runtime), queue, item, reviewer, _scores(queue, fields))
        else:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "action: submit, skip or undo")
    except HTTPException as exc:
        if exc.status_code not in (409, 422):
            raise
        raise HTTPException(exc.status_code, _problem_text(exc)) from None
    return redirect(f"/ui/queues/{quote_path(queue.queue_id)}/review")


@router.post("/queues/add")
async def add_to_queue(ui: UiManageDep) -> Response:
    """The call page's "add to queue"."""
    fields = await ui.form()
    store = QueueStore(ui.runtime.storage)
    queue = await asyncio.to_thread(found, store, ui.project, first(fields, "queue_id"))
    call = first(fields, "inference_id")
    try:
        await asyncio.to_thread(add_items, store, queue, [call], ui.actor)
    except HTTPException as exc:
        raise HTTPException(exc.status_code, _problem_text(exc)) from None
    return redirect(f"/ui/calls/{quote_path(call)}?queued={quote_path(queue.queue_id)}")
