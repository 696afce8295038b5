"""Project-scoped API keys: only a SHA-256 hash is stored; the token is shown once, at creation.

A key may be limited to a scope: ``ingest`` only sends events (safe inside an app), ``read`` serves
dashboards and queries, ``admin`` manages the project (monitors, references, redaction policy, its
keys) and reads. A key made without a scope keeps full project access (ingest, read, manage).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import SecretStr

from streams.storage import Storage, as_utc

TOKEN_PREFIX = "lw_"  # noqa: S105 - a prefix, not a secret
_CACHE_SECONDS = 10.0

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
_SELECT = "SELECT key_id, project, name, created_at, revoked, scope"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_admin_token(admin: SecretStr | None, token: str) -> bool:
    """``token`` is the admin key (``LOOPWATCH_ADMIN_KEY``); compared in constant time, as bytes, so
    any string a client sends is a plain no, never an error."""
    return admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode())


def admin_fingerprint(admin: SecretStr) -> str:
    """A short, non-reversible name of the admin key: dashboard admin sessions carry it, so changing
    the key ends them."""
    return hashlib.sha256(b"loopwatch-admin:" + admin.get_secret_value().encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    project: str
    name: str
    created_at: datetime
    revoked: bool = False
    scope: str = ""  # a ``KeyScope``, or "" for full project access

    def allows(self, permission: Permission) -> bool:
        return permission in SCOPE_PERMISSIONS.get(self.scope, frozenset())


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    token: str


class KeyStore:
    """Creates, lists, revokes and resolves keys. Lookups are cached briefly (revocation lag ≤ 10 s)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, project: str, name: str = "", scope: KeyScope | None = None) -> NewKey:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=secrets.token_hex(6), project=project, name=name, created_at=datetime.now(UTC), scope=scope or ""
        )
        self._write(key, hash_token(token))
        return NewKey(key, token)

    def _write(self, key: ApiKey, key_hash: str) -> None:
        self._storage.insert_rows(
            "api_keys",
            ["key_id", "project", "name", "key_hash", "created_at", "revoked", "updated_at", "scope"],
            [
                [
                    key.key_id,
                    key.project,
                    key.name,
                    key_hash,
                    key.created_at,
                    int(key.revoked),
                    datetime.now(UTC),
                    key.scope,
                ]
            ],
        )

    def list(self, project: str | None = None) -> list[ApiKey]:
        where = "WHERE project = {project:String}" if project else ""
        rows = self._storage.rows(
            f"{_SELECT} FROM {self._storage.database}.api_keys FINAL {where} ORDER BY created_at",
            {"project": project} if project else None,
        )
        return [_key(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        rows = self._storage.rows(
            f"SELECT key_id, project, name, created_at, key_hash, scope FROM {self._storage.database}.api_keys FINAL "
            "WHERE key_id = {key_id:String}",
            {"key_id": key_id},
        )
        if not rows:
            return False
        row = rows[0]
        self._write(
            ApiKey(row["key_id"], row["project"], row["name"], row["created_at"], True, row["scope"]), row["key_hash"]
        )
        with self._lock:
            self._cache.clear()
        return True

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from the cache alone: no I/O, so the event loop may call it."""
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def live(self, key_id: str) -> ApiKey | None:
        """The key with this id unless revoked (dashboard sessions name their key by id), cached like ``resolve``."""
        cache_key = "id:" + key_id
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        now = time.monotonic()
        rows = self._storage.rows(
            f"{_SELECT} FROM {self._storage.database}.api_keys FINAL WHERE key_id = {{key_id:String}} LIMIT 1",
            {"key_id": key_id},
        )
        key = _key(rows[0]) if rows and not rows[0]["revoked"] else None
        with self._lock:
            self._cache[cache_key] = (now + _CACHE_SECONDS, key)
        return key

    def resolve(self, token: str) -> ApiKey | None:
        """The live key for a bearer token, or None if unknown or revoked."""
        found, cached = self.cached(token)
        if found:
            return cached
        key_hash = hash_token(token)
        now = time.monotonic()
        rows = self._storage.rows(
            f"{_SELECT} FROM {self._storage.database}.api_keys FINAL WHERE key_hash = {{key_hash:String}} LIMIT 1",
            {"key_hash": key_hash},
        )
        key = _key(rows[0]) if rows and not rows[0]["revoked"] else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (now + _CACHE_SECONDS, key)
        return key


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
    )
