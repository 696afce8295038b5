"""The models a project has sent, with counts: the entry point for a dashboard or the demo summary."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ProjectDep, StorageDep
from api.errors import responses

router = APIRouter(prefix="/v1/models", tags=["models"], responses=responses(401, 503))


class ModelInfo(BaseModel):
    model: str
    versions: list[str]
    inferences: int
    errors: int
    feedback: int
    first_seen: str
    last_seen: str


@router.get("", response_model=list[ModelInfo], summary="Models with inference and feedback counts")
def list_models(project: ProjectDep, storage: StorageDep) -> list[dict[str, Any]]:
    db = storage.database
    rows = storage.rows(
        "SELECT model, groupUniqArray(model_version) AS versions, count() AS inferences, "
        "countIf(status = 'error') AS errors, min(timestamp) AS first_seen, max(timestamp) AS last_seen "
        f"FROM {db}.inferences FINAL WHERE project = {{project:String}} GROUP BY model ORDER BY model",
        {"project": project},
    )
    feedback = dict(
        storage.query(
            f"SELECT i.model, count() FROM {db}.feedback AS f FINAL "
            f"INNER JOIN (SELECT event_id, model FROM {db}.inferences FINAL WHERE project = {{project:String}}) AS i "
            "ON f.inference_id = i.event_id WHERE f.project = {project:String} GROUP BY i.model",
            {"project": project},
        ).result_rows
    )
    for row in rows:
        row["versions"] = sorted(v for v in row["versions"] if v)
        row["feedback"] = int(feedback.get(row["model"], 0))
        for key in ("first_seen", "last_seen"):
            row[key] = row[key].replace(tzinfo=UTC).isoformat()
    return rows
