"""The ``redaction_policies`` table: each project's ``RedactionPolicy``, stored as its JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.privacy import RedactionPolicy
from streams.storage.client import Storage

TABLE = "redaction_policies"
_COLUMNS = ["project", "policy", "deleted", "updated_at"]


def get(storage: Storage, project: str) -> RedactionPolicy | None:
    """The project's own policy, or None (it follows the server's default)."""
    rows = storage.rows(
        f"SELECT policy, deleted FROM {storage.database}.{TABLE} FINAL WHERE project = {{project:String}} LIMIT 1",
        {"project": project},
    )
    if not rows or rows[0]["deleted"]:
        return None
    return RedactionPolicy.model_validate_json(rows[0]["policy"])


def all_policies(storage: Storage) -> dict[str, RedactionPolicy]:
    """Every project's own policy (the table holds one row per project that set one)."""
    rows = storage.rows(f"SELECT project, policy FROM {storage.database}.{TABLE} FINAL WHERE deleted = 0")
    return {row["project"]: RedactionPolicy.model_validate_json(row["policy"]) for row in rows}


def put(storage: Storage, project: str, policy: RedactionPolicy) -> None:
    storage.insert_rows(TABLE, _COLUMNS, [[project, policy.model_dump_json(), 0, datetime.now(UTC)]])


def delete(storage: Storage, project: str) -> bool:
    """Back to the server's default; False if the project had no policy of its own."""
    if get(storage, project) is None:
        return False
    storage.insert_rows(TABLE, _COLUMNS, [[project, "", 1, datetime.now(UTC)]])
    return True
