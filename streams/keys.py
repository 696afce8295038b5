"""Project-scoped API keys: only a SHA-256 hash is stored (``streams.storage.keys``); the token is shown
once, at creation.

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
from typing import cast

from pydantic import SecretStr

from streams.storage import Storage, as_utc
from streams.storage import keys as key_table
from streams.storage.keys import SCOPE_PERMISSIONS, ApiKey, KeyScope, Permission

__all__ = [
    "SCOPE_PERMISSIONS",
    "TOKEN_PREFIX",
    "USAGE_EVERY",
    "ApiKey",
    "KeyScope",
    "KeyStore",
    "NewKey",
    "Permission",
    "admin_fingerprint",
    "hash_token",
    "is_admin_token",
]

TOKEN_PREFIX = "lw_"  # noqa: S105 - a prefix, not a secret
_CACHE_SECONDS = 10.0
USAGE_EVERY = timedelta(minutes=1)  # a key's last use is written at most this often (per process)


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
        key_table.write(self._storage, key, key_hash)

    def list(self, project: str | None = None) -> list[ApiKey]:
        """Keys (of ``project``, or all), each with its last use."""
        return key_table.listed(self._storage, project)

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id (revoked or expired too), uncached."""
        found = key_table.by_id(self._storage, key_id)
        return found[0] if found else None

    def revoke(self, key_id: str) -> bool:
        found = key_table.by_id(self._storage, key_id)
        if found is None:
            return False
        self._write(replace(found[0], revoked=True), found[1])
        with self._lock:
            self._cache.clear()
        return True

    def rotate(self, key_id: str, grace: timedelta) -> NewKey | None:
        """A successor of the key (same project, name and scope, a new token); the old key keeps working
        for ``grace`` (or until its own expiry, if sooner). None if there is no live key ``key_id``."""
        found = key_table.by_id(self._storage, key_id)
        if found is None:
            return None
        old = found[0]
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
        key_table.record_use(self._storage, key.key_id, now)

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
        found = key_table.by_id(self._storage, key_id)
        key = found[0] if found and not found[0].revoked else None
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
        key = key_table.by_hash(self._storage, key_hash)
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
