"""``/v1/queues``: review queues. Managers create and fill them; reviewers (keys of scope ``review``,
named after the person) take the next item, review or skip it, and undo their last review. Every
review becomes feedback (source ``annotator``, ``user_id`` = the reviewer)."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from api.deps import CurrentKey, ManagedProjectDep, ProjectDep, PublisherDep, RuntimeDep, StorageDep, check_scope
from api.errors import ErrorMessage, responses, unprocessable
from api.queries.feedback import FeedbackFilter, feedback_page
from detectors.agreement import cohen_kappa, fleiss_kappa
from schemas.events import EventId
from schemas.queues import QUEUE_ID_PATTERN, Queue, QueueCreate, ScoreField, ScoreValue
from streams.bus import Publisher
from streams.decode import FEEDBACK, EventTimePolicy
from streams.keys import ApiKey
from streams.runtime import Runtime
from streams.storage import Storage
from streams.storage.inferences import inference
from streams.storage.queues import QueueProgress, QueueStore

router = APIRouter(prefix="/v1/queues", tags=["queues"], responses=responses(400, 401, 403, 503))
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage, "description": "the queue exists, or the item is not yours to review (hold)"}
}
QueuePath = Annotated[str, Path(pattern=QUEUE_ID_PATTERN)]
ItemPath = Annotated[str, Path(min_length=1, max_length=200)]


async def queue_store(storage: StorageDep) -> QueueStore:
    return QueueStore(storage)


QueuesDep = Annotated[QueueStore, Depends(queue_store)]


def reviewer_name(key: ApiKey) -> str:
    """Who a review key belongs to: its name (the person), or its id for a key made without one."""
    return key.name or f"key {key.key_id}"


async def current_reviewer(key: CurrentKey) -> ApiKey:
    check_scope(key, "review")
    return key


ReviewerDep = Annotated[ApiKey, Depends(current_reviewer)]


class Progress(BaseModel):
    items: int
    done: int = Field(description="items with reviews_per_item reviews")
    held: int = Field(description="items a reviewer holds now")
    reviewers: dict[str, dict[str, int]] = Field(description="reviewer → reviews and skips")


class Agreement(BaseModel):
    field: str
    items: int = Field(description="items reviewed more than once on this field")
    method: str = Field(description="cohen (two reviewers) or fleiss (more)")
    kappa: float | None


class QueueOut(BaseModel):
    queue: Queue
    progress: Progress
    agreement: list[Agreement]


class ItemsIn(BaseModel):
    model_config = {"extra": "forbid"}
    inference_ids: list[EventId] = Field(min_length=1, max_length=1000)


class Added(BaseModel):
    added: int


class ReviewIn(BaseModel):
    model_config = {"extra": "forbid"}
    scores: dict[str, float | str | bool | None] = Field(description="field name → value, as the queue's form asks")


class ReviewItem(BaseModel):
    queue_id: str
    inference_id: str
    reviewer: str
    held_until: datetime
    call: dict[str, Any]
    feedback: list[dict[str, Any]]
    fields: list[ScoreField]


class Reviewed(BaseModel):
    inference_id: str
    feedback_ids: list[str]


def progress_out(progress: QueueProgress) -> dict[str, Any]:
    return {
        "items": progress.items,
        "done": progress.done,
        "held": progress.held,
        "reviewers": {name: {"reviews": r, "skips": s} for name, (r, s) in progress.per_reviewer.items()},
    }


def agreement(store: QueueStore, queue: Queue) -> list[dict[str, Any]]:
    """Kappa per categorical field (labels, boolean) over items reviewed more than once."""
    by_item: dict[str, dict[str, dict[str, ScoreValue]]] = defaultdict(dict)
    for review in store.reviews(queue):
        by_item[review.inference_id][review.reviewer] = review.scores
    out = []
    for field in queue.fields:
        if field.type not in ("labels", "boolean"):
            continue
        rated = {
            item: {who: scores[field.name] for who, scores in reviews.items() if scores.get(field.name) is not None}
            for item, reviews in by_item.items()
        }
        multi = {item: labels for item, labels in rated.items() if len(labels) > 1}
        reviewers = {who for labels in multi.values() for who in labels}
        if len(reviewers) == 2:
            first, second = sorted(reviewers)
            pairs = [(labels[first], labels[second]) for labels in multi.values() if len(labels) == 2]
            kappa = cohen_kappa([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
            out.append({"field": field.name, "items": len(pairs), "method": "cohen", "kappa": kappa})
        elif multi:
            counts = [len(labels) for labels in multi.values()]
            size = max(set(counts), key=counts.count)  # Fleiss needs as many ratings on each item
            rows = [list(labels.values()) for labels in multi.values() if len(labels) == size]
            out.append({"field": field.name, "items": len(rows), "method": "fleiss", "kappa": fleiss_kappa(rows)})
    return out


def found(store: QueueStore, project: str, queue_id: str) -> Queue:
    queue = store.get(project, queue_id)
    if queue is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review queue {queue_id!r} in this project")
    return queue


def queue_out(store: QueueStore, queue: Queue) -> dict[str, Any]:
    return {"queue": queue, "progress": progress_out(store.progress(queue)), "agreement": agreement(store, queue)}


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=QueueOut, responses={**responses(422), **_CONFLICT}
)
async def create_queue(
    body: QueueCreate, project: ManagedProjectDep, queues: QueuesDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Create a queue and fill it by its rules from the calls stored now; from then on it takes what arrives."""
    if await asyncio.to_thread(queues.get, project, body.queue_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"review queue {body.queue_id!r} exists")
    queue = Queue(**body.model_dump(), project=project, created_at=datetime.now(UTC))
    await asyncio.to_thread(queues.put, queue)
    await asyncio.to_thread(queues.start_watermark, queue, runtime.settings.queue_fill_settle_seconds)
    await asyncio.to_thread(queues.fill, queue)
    return await asyncio.to_thread(queue_out, queues, queue)


@router.get("", response_model=list[QueueOut], summary="The project's review queues with their progress")
async def list_queues(project: ProjectDep, queues: QueuesDep) -> list[dict[str, Any]]:
    listed = await asyncio.to_thread(queues.all, project)
    return [await asyncio.to_thread(queue_out, queues, queue) for queue in listed]


@router.get("/{queue_id}", response_model=QueueOut, responses=responses(404))
async def get_queue(project: ProjectDep, queues: QueuesDep, queue_id: QueuePath) -> dict[str, Any]:
    queue = await asyncio.to_thread(found, queues, project, queue_id)
    return await asyncio.to_thread(queue_out, queues, queue)


@router.post("/{queue_id}/fill", response_model=Added, responses=responses(404), summary="Apply the rules now")
async def fill_queue(project: ManagedProjectDep, queues: QueuesDep, queue_id: QueuePath) -> dict[str, int]:
    queue = await asyncio.to_thread(found, queues, project, queue_id)
    return {"added": await asyncio.to_thread(queues.fill, queue)}


def add_items(queues: QueueStore, queue: Queue, ids: list[str], by: str) -> int:
    known = queues.known_calls(queue.project, ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stored call with id {unknown[0]!r} in this project")
    return queues.add(queue.project, queue.queue_id, ids, by=by)


@router.post("/{queue_id}/items", response_model=Added, responses=responses(404, 422), summary="Add calls by hand")
async def add_to_queue(
    body: ItemsIn, project: ManagedProjectDep, queues: QueuesDep, queue_id: QueuePath
) -> dict[str, int]:
    queue = await asyncio.to_thread(found, queues, project, queue_id)
    return {"added": await asyncio.to_thread(add_items, queues, queue, body.inference_ids, "api")}


def review_item(storage: Storage, queues: QueueStore, queue: Queue, reviewer: str) -> dict[str, Any] | None:
    """The next item for ``reviewer`` (now held by them) with its call and feedback, or None when done."""
    item = queues.next_item(queue, reviewer)
    if item is None:
        return None
    call = inference(storage, queue.project, item)
    feedback, _ = feedback_page(storage, FeedbackFilter(project=queue.project, inference_id=item), limit=100)
    held = queues.holder(queue, item)
    since = held[1] if held else datetime.now(UTC)
    return {
        "queue_id": queue.queue_id,
        "inference_id": item,
        "reviewer": reviewer,
        "held_until": since + timedelta(seconds=queue.hold_seconds),
        "call": {
            "model": call.model if call else "",
            "model_version": call.model_version if call else "",
            "timestamp": call.timestamp if call else None,
            "status": call.status if call else "",
            "prompt": call.prompt if call else "",
            "response": call.response if call else "",
            "tags": call.tags if call else {},
        },
        "feedback": feedback,
        "fields": queue.fields,
    }


@router.post(
    "/{queue_id}/next",
    response_model=ReviewItem,
    responses={**responses(404), 204: {"description": "nothing left for this reviewer"}},
    summary="Take the next item to review (held for the queue's hold_seconds)",
)
async def next_item(
    key: ReviewerDep, queues: QueuesDep, storage: StorageDep, queue_id: QueuePath
) -> dict[str, Any] | Response:
    queue = await asyncio.to_thread(found, queues, key.project, queue_id)
    item = await asyncio.to_thread(review_item, storage, queues, queue, reviewer_name(key))
    return Response(status_code=status.HTTP_204_NO_CONTENT) if item is None else item


def _check_scores(queue: Queue, scores: dict[str, ScoreValue]) -> dict[str, ScoreValue]:
    fields = {field.name: field for field in queue.fields}
    for name in scores:
        if name not in fields:
            raise unprocessable(["body", "scores", name], f"the queue's form has no field {name!r}")
    clean: dict[str, ScoreValue] = {}
    for name, field in fields.items():
        value = scores.get(name)
        if value is None or value == "":
            if field.required and field.type not in ("comment",):
                raise unprocessable(["body", "scores", name], f"{field.type} field {name!r} is required")
            continue
        loc: list[str | int] = ["body", "scores", name]
        if field.type == "range":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise unprocessable(loc, f"a number from {field.min:g} to {field.max:g}")
            assert field.min is not None
            assert field.max is not None
            if not field.min <= value <= field.max:
                raise unprocessable(loc, f"{value:g} is outside {field.min:g}–{field.max:g}")
        elif field.type == "labels":
            if value not in field.labels:
                raise unprocessable(loc, f"one of {', '.join(field.labels)}")
        elif field.type == "boolean":
            if not isinstance(value, bool):
                raise unprocessable(loc, "true or false")
        elif not isinstance(value, str):
            raise unprocessable(loc, "text")
        clean[name] = value
    return clean


def _feedback_items(queue: Queue, item: str, reviewer: str, scores: dict[str, ScoreValue]) -> list[dict[str, Any]]:
    """One feedback item per answered field; ids derive from (queue, item, reviewer, field), so a review
    redone after an undo replaces the earlier feedback."""
    by_name = {field.name: field for field in queue.fields}
    out = []
    for name, value in scores.items():
        field = by_name[name]
        digest = hashlib.sha256(f"{queue.project}\x1f{queue.queue_id}\x1f{item}\x1f{reviewer}\x1f{name}".encode())
        base: dict[str, Any] = {
            "feedback_id": f"review-{digest.hexdigest()[:24]}",
            "inference_id": item,
            "source": "annotator",
            "user_id": reviewer[:200],
        }
        if field.type == "range":
            out.append({**base, "kind": "score", "name": name, "value": float(value)})  # type: ignore[arg-type]
        elif field.type == "boolean":
            out.append({**base, "kind": "score", "name": name, "value": 1.0 if value else 0.0})
        elif field.type == "labels":
            out.append({**base, "kind": "label", "name": name, "value": value})
        else:
            out.append({**base, "kind": field.type, "name": name, "text": value})
    return out


def _holds(queues: QueueStore, queue: Queue, item: str, reviewer: str) -> None:
    held = queues.holder(queue, item)
    if held is None or held[0] != reviewer:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"you do not hold item {item!r}: take it with POST /v1/queues/{queue.queue_id}/next"
            + (" (another reviewer has it)" if held else ""),
        )


async def submit(
    runtime: Runtime, publisher: Publisher, queue: Queue, item: str, reviewer: str, scores: dict[str, ScoreValue]
) -> list[str]:
    """Store a review: its feedback first (through the ingest path), then the review row."""
    queues = QueueStore(runtime.storage)
    await asyncio.to_thread(_holds, queues, queue, item, reviewer)
    clean = _check_scores(queue, scores)
    items = _feedback_items(queue, item, reviewer, clean)
    for entry in items:
        entry["project"] = queue.project
    records = FEEDBACK.validate_all(items, EventTimePolicy.of(runtime.settings).rules())
    await publisher.publish_feedback(records)
    ids = [entry["feedback_id"] for entry in items]
    await asyncio.to_thread(queues.record, queue, item, reviewer, scores=clean, feedback_ids=ids)
    return ids


@router.post(
    "/{queue_id}/items/{inference_id}/review",
    status_code=status.HTTP_201_CREATED,
    response_model=Reviewed,
    responses={**responses(404, 422), **_CONFLICT},
    summary="Review a held item: each answered field becomes feedback",
)
async def review(
    body: ReviewIn,
    key: ReviewerDep,
    runtime: RuntimeDep,
    publisher: PublisherDep,
    queue_id: QueuePath,
    inference_id: ItemPath,
) -> dict[str, Any]:
    queue = await asyncio.to_thread(found, QueueStore(runtime.storage), key.project, queue_id)
    ids = await submit(runtime, publisher, queue, inference_id, reviewer_name(key), body.scores)
    return {"inference_id": inference_id, "feedback_ids": ids}


async def skip_item(runtime: Runtime, queue: Queue, item: str, reviewer: str) -> None:
    queues = QueueStore(runtime.storage)
    await asyncio.to_thread(_holds, queues, queue, item, reviewer)
    await asyncio.to_thread(queues.record, queue, item, reviewer, skipped=True)


@router.post(
    "/{queue_id}/items/{inference_id}/skip",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**responses(404), **_CONFLICT},
    summary="Skip a held item (it goes back to the others)",
)
async def skip(key: ReviewerDep, runtime: RuntimeDep, queue_id: QueuePath, inference_id: ItemPath) -> Response:
    queue = await asyncio.to_thread(found, QueueStore(runtime.storage), key.project, queue_id)
    await skip_item(runtime, queue, inference_id, reviewer_name(key))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def undo_last(queues: QueueStore, queue: Queue, reviewer: str) -> str:
    last = queues.last_review(queue, reviewer)
    if last is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "nothing to undo: you have no review in this queue")
    queues.record(
        queue,
        last.inference_id,
        reviewer,
        skipped=last.skipped,
        scores=last.scores,
        feedback_ids=last.feedback_ids,
        undone=True,
        at=last.reviewed_at,
    )
    return last.inference_id


@router.post(
    "/{queue_id}/undo",
    response_model=Reviewed,
    responses={**responses(404), **_CONFLICT},
    summary="Withdraw your last review or skip (its item comes back to you while you hold it)",
)
async def undo(key: ReviewerDep, queues: QueuesDep, queue_id: QueuePath) -> dict[str, Any]:
    queue = await asyncio.to_thread(found, queues, key.project, queue_id)
    item = await asyncio.to_thread(undo_last, queues, queue, reviewer_name(key))
    return {"inference_id": item, "feedback_ids": []}
