"""Project-scoped API keys: only a SHA-256 hash is stored; the token is shown once, at creation.

A key may be limited to a scope: ``ingest`` only sends events (safe inside an app), ``read`` serves
dashboards and queries, ``admin`` manages the project (monitors, references, redaction policy, its
keys) and reads. A key made without a scope keeps full project access (ingest, read, manage).

A key may expire (``expires_at``); rotating a key makes a successor with a new token and lets the old
one work until a grace period ends. The last use of each key is recorded at most once a minute per
key and process (``api_key_usage``), never a write per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from pydantic import SecretStr

from streams.storage import Storage, as_utc

TOKEN_PREFIX = "lw_"  # noqa: S105 - a prefix, not a secret
_CACHE_SECONDS = 10.0
USAGE_EVERY = timedelta(minutes=1)  # a key's last use is written at most this often (per process)

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
    expires_at: datetime | None = None  # None: never
    rotated_from: str = ""  # the key id this key replaced (``rotate``)
    last_used_at: datetime | None = None  # filled by ``KeyStore.list`` only

    def allows(self, permission: Permission) -> bool:
        return permission in SCOPE_PERMISSIONS.get(self.scope, frozenset())

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    token: str


class KeyStore:
    """Creates, lists, revokes, rotates and resolves keys. Lookups are cached briefly (revocation lag
    ≤ 10 s; expiry is checked on every use). ``clock`` is the time keys expire and are used by."""

    def __init__(self, storage: Storage, clock: Callable[[], datetime] | None = None) -> None:
        self._storage = storage
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()
        self._used: dict[str, datetime] = {}  # key id → when its use was last written by this process
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    def create(
        self,
        project: str,
        name: str = "",
        scope: KeyScope | None = None,
        *,
        expires_at: datetime | None = None,
        rotated_from: str = "",
    ) -> NewKey:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=secrets.token_hex(6),
            project=project,
            name=name,
            created_at=self.clock(),
            scope=scope or "",
            expires_at=_millis(expires_at) if expires_at else None,
            rotated_from=rotated_from,
        )
        self._write(key, hash_token(token))
        return NewKey(key, token)

    def _write(self, key: ApiKey, key_hash: str) -> None:
        self._storage.insert_rows(
            "api_keys",
            [
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
            ],
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
                    key.expires_at,
                    key.rotated_from,
                ]
            ],
        )

    def list(self, project: str | None = None) -> list[ApiKey]:
        """Keys (of ``project``, or all), each with its last use."""
        db = self._storage.database
        where = "WHERE project = {project:String}" if project else ""
        rows = self._storage.rows(
            f"{_SELECT} FROM {db}.api_keys FINAL {where} ORDER BY created_at",
            {"project": project} if project else None,
        )
        used = {
            row["key_id"]: as_utc(row["used_at"])
            for row in self._storage.rows(
                f"SELECT key_id, max(used_at) AS used_at FROM {db}.api_key_usage GROUP BY key_id"
            )
        }
        return [replace(_key(r), last_used_at=used.get(str(r["key_id"]))) for r in rows]

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id (revoked or expired too), uncached."""
        found = self._row(key_id)
        return _key(found[0]) if found else None

    def _row(self, key_id: str) -> tuple[dict[str, object], str] | None:
        rows = self._storage.rows(
            f"{_SELECT}, key_hash FROM {self._storage.database}.api_keys FINAL WHERE key_id = {{key_id:String}}",
            {"key_id": key_id},
        )
        return (rows[0], str(rows[0]["key_hash"])) if rows else None

    def revoke(self, key_id: str) -> bool:
        found = self._row(key_id)
        if found is None:
            return False
        self._write(replace(_key(found[0]), revoked=True), found[1])
        with self._lock:
            self._cache.clear()
        return True

    def rotate(self, key_id: str, grace: timedelta) -> NewKey | None:
        """A successor of the key (same project, name and scope, a new token); the old key keeps working
        for ``grace`` (or until its own expiry, if sooner). None if there is no live key ``key_id``."""
        found = self._row(key_id)
        if found is None:
            return None
        old = _key(found[0])
        now = self.clock()
        if old.revoked or old.expired(now):
            return None
        scope = cast("KeyScope | None", old.scope or None)  # a stored scope is a KeyScope
        new = self.create(old.project, old.name, scope, expires_at=old.expires_at, rotated_from=old.key_id)
        ends = _millis(now + grace)
        if old.expires_at is None or ends < old.expires_at:
            self._write(replace(old, expires_at=ends), found[1])
        with self._lock:
            self._cache.clear()
        return new

    def used(self, key: ApiKey) -> None:
        """Record that ``key`` was used now: a write only if this process wrote none for it in the last
        minute (``due`` tells without I/O)."""
        now = self.clock()
        with self._lock:
            if not self._due(key.key_id, now):
                return
            self._used[key.key_id] = now
        self._storage.insert_rows("api_key_usage", ["key_id", "used_at"], [[key.key_id, now]])

    def due(self, key: ApiKey) -> bool:
        """Whether a use of ``key`` now would be written (no I/O: the event loop asks this per request)."""
        with self._lock:
            return self._due(key.key_id, self.clock())

    def _due(self, key_id: str, now: datetime) -> bool:
        last = self._used.get(key_id)
        return last is None or now - last >= USAGE_EVERY

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from the cache alone: no I/O, so the event loop may call it."""
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def live(self, key_id: str) -> ApiKey | None:
        """The key with this id unless revoked or expired (dashboard sessions name their key by id), cached
        like ``resolve``."""
        cache_key = "id:" + key_id
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return _unexpired(hit[1], self.clock())
        now = time.monotonic()
        rows = self._storage.rows(
            f"{_SELECT} FROM {self._storage.database}.api_keys FINAL WHERE key_id = {{key_id:String}} LIMIT 1",
            {"key_id": key_id},
        )
        key = _key(rows[0]) if rows and not rows[0]["revoked"] else None
        with self._lock:
            self._cache[cache_key] = (now + _CACHE_SECONDS, key)
        return _unexpired(key, self.clock())

    def resolve(self, token: str) -> ApiKey | None:
        """The key for a bearer token, or None if unknown or revoked (an expired key is returned: the
        caller says it expired)."""
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


def _millis(value: datetime) -> datetime:
    """``value`` in UTC to the millisecond, as ``api_keys`` stores it (what is returned is what is kept)."""
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _unexpired(key: ApiKey | None, now: datetime) -> ApiKey | None:
    return None if key is None or key.expired(now) else key


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
