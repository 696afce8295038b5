"""Queries of the ``inferences`` table outside the write path (which ``streams.writes`` owns)."""

from __future__ import annotations

from streams.storage.client import Storage

MAX_MODELS = 1000


def has_model(storage: Storage, project: str, model: str) -> bool:
    """Whether ``project`` has sent an inference of ``model`` (one primary-key lookup)."""
    return bool(
        storage.rows(
            f"SELECT 1 FROM {storage.database}.inferences "
            "WHERE project = {project:String} AND model = {model:String} LIMIT 1",
            {"project": project, "model": model},
        )
    )


def model_names(storage: Storage, project: str, limit: int = MAX_MODELS) -> list[str]:
    """The models ``project`` has sent inferences of, by name (at most ``limit``)."""
    rows = storage.rows(
        f"SELECT DISTINCT model FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "ORDER BY model LIMIT {limit:UInt32}",
        {"project": project, "limit": limit},
    )
    return [str(row["model"]) for row in rows]
