"""The ``api_keys`` and ``api_key_usage`` tables: API keys (a SHA-256 hash of the token, never the
token) and when each was last used.

A key is a row per change (``ReplacingMergeTree(updated_at)``: revoking or shortening a key writes the
row again); a use is a row in ``api_key_usage``, read back as the newest per key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from streams.storage.client import Storage
from streams.storage.times import as_utc

KeyScope = Literal["ingest", "read", "admin", "review"]
Permission = Literal["ingest", "read", "manage", "keys", "review"]
# What each scope may do; "" is a key made without a scope (full project access, as before scopes).
SCOPE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "": frozenset({"ingest", "read", "manage"}),
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"read", "manage", "keys"}),
    "review": frozenset({"review"}),  # a named reviewer: review queues only (api/routes/queues.py)
}
_SELECT = "SELECT key_id, project, name, created_at, revoked, scope, expires_at, rotated_from"
_COLUMNS = [
    "key_id",
    "project",
    "name",
    "key_hash",
    "created_at",
    "revoked",
    "updated_at",
    "scope",
    "expires_at",
    "rotated_from",
]


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    project: str
    name: str
    created_at: datetime
    revoked: bool = False
    scope: str = ""  # a ``KeyScope``, or "" for full project access
    expires_at: datetime | None = None  # None: never
    rotated_from: str = ""  # the key id this key replaced (``rotate``)
    last_used_at: datetime | None = None  # filled by ``KeyStore.list`` only

    def allows(self, permission: Permission) -> bool:
        return permission in SCOPE_PERMISSIONS.get(self.scope, frozenset())

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def _key(row: dict[str, object]) -> ApiKey:
    created = row["created_at"]
    assert isinstance(created, datetime)
    return ApiKey(
        str(row["key_id"]),
        str(row["project"]),
        str(row["name"]),
        as_utc(created),
        bool(row["revoked"]),
        str(row["scope"]),
        as_utc(expires) if isinstance(expires := row.get("expires_at"), datetime) else None,
        str(row.get("rotated_from") or ""),
    )


def write(storage: Storage, key: ApiKey, key_hash: str) -> None:
    """Store ``key`` (new, or a change of it) with the hash of its token."""
    row = [
        key.key_id,
        key.project,
        key.name,
        key_hash,
        key.created_at,
        int(key.revoked),
        datetime.now(UTC),
        key.scope,
        key.expires_at,
        key.rotated_from,
    ]
    storage.insert_rows("api_keys", _COLUMNS, [row])


def listed(storage: Storage, project: str | None = None) -> list[ApiKey]:
    """Keys (of ``project``, or all), oldest first, each with its last use."""
    db = storage.database
    where = "WHERE project = {project:String}" if project else ""
    rows = storage.rows(
        f"{_SELECT} FROM {db}.api_keys FINAL {where} ORDER BY created_at", {"project": project} if project else None
    )
    used = {
        row["key_id"]: as_utc(row["used_at"])
        for row in storage.rows(f"SELECT key_id, max(used_at) AS used_at FROM {db}.api_key_usage GROUP BY key_id")
    }
    return [replace(_key(r), last_used_at=used.get(str(r["key_id"]))) for r in rows]


def by_id(storage: Storage, key_id: str) -> tuple[ApiKey, str] | None:
    """The key with this id (revoked or expired too) and its token's hash."""
    rows = storage.rows(
        f"{_SELECT}, key_hash FROM {storage.database}.api_keys FINAL WHERE key_id = {{key_id:String}} LIMIT 1",
        {"key_id": key_id},
    )
    return (_key(rows[0]), str(rows[0]["key_hash"])) if rows else None


def by_hash(storage: Storage, key_hash: str) -> ApiKey | None:
    """The unrevoked key whose token has this hash (expired too)."""
    rows = storage.rows(
        f"{_SELECT} FROM {storage.database}.api_keys FINAL WHERE key_hash = {{key_hash:String}} LIMIT 1",
        {"key_hash": key_hash},
    )
    return _key(rows[0]) if rows and not rows[0]["revoked"] else None


def record_use(storage: Storage, key_id: str, at: datetime) -> None:
    """Store a use of the key (the caller writes at most one a minute)."""
    storage.insert_rows("api_key_usage", ["key_id", "used_at"], [[key_id, at]])
