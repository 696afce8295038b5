"""The ``retention_policies`` table: each project's ``RetentionPolicy``, stored as its JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.privacy import RetentionPolicy
from streams.storage.client import Storage

TABLE = "retention_policies"
_COLUMNS = ["project", "policy", "deleted", "updated_at"]


def get(storage: Storage, project: str) -> RetentionPolicy | None:
    """The project's policy, or None (only the server's TTLs apply)."""
    rows = storage.rows(
        f"SELECT policy, deleted FROM {storage.database}.{TABLE} FINAL WHERE project = {{project:String}} LIMIT 1",
        {"project": project},
    )
    if not rows or rows[0]["deleted"]:
        return None
    return RetentionPolicy.model_validate_json(rows[0]["policy"])


def all_policies(storage: Storage) -> dict[str, RetentionPolicy]:
    rows = storage.rows(f"SELECT project, policy FROM {storage.database}.{TABLE} FINAL WHERE deleted = 0")
    return {row["project"]: RetentionPolicy.model_validate_json(row["policy"]) for row in rows}


def put(storage: Storage, project: str, policy: RetentionPolicy) -> None:
    storage.insert_rows(TABLE, _COLUMNS, [[project, policy.model_dump_json(), 0, datetime.now(UTC)]])


def delete(storage: Storage, project: str) -> bool:
    """False if the project had no policy."""
    if get(storage, project) is None:
        return False
    storage.insert_rows(TABLE, _COLUMNS, [[project, "", 1, datetime.now(UTC)]])
    return True
