"""The ``evaluators`` table: each project's online evaluators (``schemas.evaluators.Evaluator`` as JSON).

Versioned rows like ``monitors``: a change writes a new row (``version`` = nanoseconds), reads take the
newest with ``FINAL``, a deletion is a row with ``deleted = 1``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import structlog
from pydantic import ValidationError

from schemas.evaluators import Evaluator
from streams.storage.client import Storage

log = structlog.get_logger(__name__)

TABLE = "evaluators"
_COLUMNS = ["project", "evaluator_id", "body", "deleted", "version", "updated_at"]


def _parse(project: str, body: str) -> Evaluator | None:
    try:
        return Evaluator.model_validate_json(body)
    except ValidationError as exc:  # written by another version with other rules: skip, say so
        log.error("evaluator_unreadable", project=project, error=str(exc)[:500])
        return None


def stored(storage: Storage, project: str, evaluator_id: str | None = None) -> list[Evaluator]:
    """The project's evaluators (or the one of that id), by id."""
    where = "project = {project:String}" + (" AND evaluator_id = {evaluator_id:String}" if evaluator_id else "")
    rows = storage.rows(
        f"SELECT body FROM {storage.database}.{TABLE} FINAL WHERE {where} AND deleted = 0 ORDER BY evaluator_id",
        {"project": project, "evaluator_id": evaluator_id or ""},
    )
    return [found for row in rows if (found := _parse(project, row["body"])) is not None]


def all_enabled(storage: Storage) -> list[Evaluator]:
    """Every project's enabled evaluators (the sampler's view)."""
    rows = storage.rows(f"SELECT project, body FROM {storage.database}.{TABLE} FINAL WHERE deleted = 0")
    found = [_parse(row["project"], row["body"]) for row in rows]
    return [evaluator for evaluator in found if evaluator is not None and evaluator.enabled]


def write(storage: Storage, evaluator: Evaluator, *, deleted: bool = False) -> None:
    body = orjson.dumps(evaluator.model_dump(mode="json")).decode()
    storage.insert_rows(
        TABLE,
        _COLUMNS,
        [[evaluator.project, evaluator.evaluator_id, body, int(deleted), time.time_ns(), datetime.now(UTC)]],
    )
