"""Tables of one JSON document per project (a policy): the newest row per project wins and a removed
document is a row with ``deleted = 1``. ``redaction_policies`` and ``retention_policies`` are such
tables; each module names its table and its pydantic model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

from streams.storage.client import Storage

M = TypeVar("M", bound=BaseModel)
_COLUMNS = ["project", "policy", "deleted", "updated_at"]


class ProjectDocuments(Generic[M]):
    def __init__(self, table: str, model: type[M]) -> None:
        self.table = table
        self.model = model

    def get(self, storage: Storage, project: str) -> M | None:
        """The project's document, or None."""
        rows = storage.rows(
            f"SELECT policy, deleted FROM {storage.database}.{self.table} FINAL "
            "WHERE project = {project:String} LIMIT 1",
            {"project": project},
        )
        if not rows or rows[0]["deleted"]:
            return None
        return self.model.model_validate_json(rows[0]["policy"])

    def all(self, storage: Storage) -> dict[str, M]:
        """Every project's document (the table holds one row per project that set one)."""
        rows = storage.rows(f"SELECT project, policy FROM {storage.database}.{self.table} FINAL WHERE deleted = 0")
        return {row["project"]: self.model.model_validate_json(row["policy"]) for row in rows}

    def put(self, storage: Storage, project: str, document: M) -> None:
        storage.insert_rows(self.table, _COLUMNS, [[project, document.model_dump_json(), 0, datetime.now(UTC)]])

    def delete(self, storage: Storage, project: str) -> bool:
        """False if the project had no document."""
        if self.get(storage, project) is None:
            return False
        storage.insert_rows(self.table, _COLUMNS, [[project, "", 1, datetime.now(UTC)]])
        return True
