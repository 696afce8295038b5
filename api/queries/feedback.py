"""Feedback listing with keyset pagination, joined to its inference when that has arrived.

The join happens per page (a primary-key lookup of at most ``limit`` ids), so feedback that arrived
before its inference shows the inference as soon as it lands, with no write-time bookkeeping. The
reads are ``streams.storage.feedback`` and ``streams.storage.inferences``; this module adds the
cursor and the shape of an item.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import limits
from streams.storage import as_utc, ch_time
from streams.storage import feedback as feedback_table
from streams.storage.client import Storage
from streams.storage.feedback import FeedbackFilter, PagePosition, StoredFeedback
from streams.storage.inferences import JudgedCall, judged_calls

__all__ = ["CURSOR_PATTERN", "FeedbackFilter", "decode_cursor", "encode_cursor", "feedback_page", "iter_feedback"]

# A page cursor: the last item's time in epoch milliseconds (13 digits reach 2286, inside the range
# DateTime64 binds) and its feedback id. Every string of this shape is a cursor, so the route's
# pattern check is the whole validation.
CURSOR_PATTERN = rf"^[0-9]{{1,13}}_[A-Za-z0-9._:\-]{{1,{limits.MAX_ID_LENGTH}}}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def encode_cursor(timestamp: datetime, feedback_id: str) -> str:
    return f"{(as_utc(timestamp) - _EPOCH) // _MILLISECOND}_{feedback_id}"


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (DateTime64 literal, feedback id) of a cursor matching ``CURSOR_PATTERN``."""
    millis, _, feedback_id = cursor.partition("_")
    return ch_time(_EPOCH + int(millis) * _MILLISECOND), feedback_id


def _inference(call: JudgedCall) -> dict[str, Any]:
    return {
        "event_id": call.event_id,
        "model": call.model,
        "model_version": call.model_version,
        "timestamp": call.timestamp,
        "prompt": call.prompt,
        "response": call.response,
        "tags": call.tags,
    }


def _feedback_item(row: StoredFeedback, inference: JudgedCall | None) -> dict[str, Any]:
    return {
        "feedback_id": row.feedback_id,
        "inference_id": row.inference_id,
        "timestamp": row.timestamp,
        "kind": row.kind,
        "value": row.value,
        "name": row.name,
        "text": row.text,
        "source": row.source,
        "user_id": row.user_id,
        "inference": None if inference is None else _inference(inference),
    }


def feedback_page(
    storage: Storage, flt: FeedbackFilter, *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    after = PagePosition(*decode_cursor(cursor)) if cursor else None
    rows = feedback_table.page(storage, flt, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    joined = judged_calls(storage, flt.project, [row.inference_id for row in rows])
    items = [_feedback_item(row, joined.get(row.inference_id)) for row in rows]
    next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].feedback_id) if more and rows else None
    return items, next_cursor


def iter_feedback(storage: Storage, flt: FeedbackFilter, *, page_size: int = 5_000) -> Iterator[dict[str, Any]]:
    """Every matching item, page by page: memory stays bounded however large the export."""
    cursor: str | None = None
    while True:
        items, cursor = feedback_page(storage, flt, limit=page_size, cursor=cursor)
        yield from items
        if cursor is None:
            return
