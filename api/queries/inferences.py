"""One inference by id, with all of its feedback."""

from __future__ import annotations

from typing import Any

import orjson

from api.queries.feedback import FeedbackFilter, feedback_page
from schemas.times import as_utc
from streams.storage import Storage


def inference_detail(storage: Storage, project: str, event_id: str) -> dict[str, Any] | None:
    rows = storage.rows(
        "SELECT event_id, project, model, model_version, provider, timestamp, latency_ms, status, error_type, "
        "input_tokens, output_tokens, cached_tokens, cost_usd, prompt, response, features, prediction, tags "
        f"FROM {storage.database}.inferences FINAL "
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
