"""One inference by id, with all of its feedback."""

from __future__ import annotations

from typing import Any

import orjson

from api.queries.feedback import FeedbackFilter, feedback_page
from schemas.records import InferenceRecord
from schemas.times import as_utc
from streams.storage import Storage

# Every field of the event contract is a column of ``inferences`` (tests/schemas/test_contract_sync.py);
# the detail returns all of them but the two bulky model outputs.
NOT_IN_DETAIL = frozenset({"probabilities", "embedding"})
DETAIL_COLUMNS = tuple(name for name in InferenceRecord.__struct_fields__ if name not in NOT_IN_DETAIL)


def inference_detail(storage: Storage, project: str, event_id: str) -> dict[str, Any] | None:
    rows = storage.rows(
        f"SELECT {', '.join(DETAIL_COLUMNS)} FROM {storage.database}.inferences FINAL "
        "WHERE project = {project:String} AND event_id = {event_id:String} LIMIT 1",
        {"project": project, "event_id": event_id},
    )
    if not rows:
        return None
    row = rows[0]
    row["timestamp"] = as_utc(row["timestamp"])
    row["features"] = orjson.loads(row["features"]) if row["features"] else {}
    items, _ = feedback_page(storage, FeedbackFilter(project=project, inference_id=event_id), limit=1000)
    row["feedback"] = items
    return row
