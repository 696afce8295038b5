"""Queries of the ``inferences`` table that the API asks (the writes are ``streams.writes``)."""

from __future__ import annotations

from streams.storage.client import Storage


def has_model(storage: Storage, project: str, model: str) -> bool:
    """Whether the project ever sent an inference of ``model`` (one granule read: the table is sorted
    by project and model)."""
    rows = storage.query(
        f"SELECT 1 FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "AND model = {model:String} LIMIT 1",
        {"project": project, "model": model},
    ).result_rows
    return bool(rows)


def model_names(storage: Storage, project: str, limit: int = 1000) -> list[str]:
    """The models ``project`` has sent inferences of, by name (at most ``limit``)."""
    rows = storage.rows(
        f"SELECT DISTINCT model FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "ORDER BY model LIMIT {limit:UInt32}",
        {"project": project, "limit": limit},
    )
    return [str(row["model"]) for row in rows]
