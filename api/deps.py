"""FastAPI dependencies as ``Annotated`` aliases, so route signatures read like sentences.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool, a thread
hop per dependency per request, which cost more than everything else an ingest request does per event.
Only a key-cache miss goes to a thread (it queries storage).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from streams.bus import Publisher
from streams.evals import Evaluations
from streams.keys import ApiKey, Permission, is_admin_token
from streams.monitors import Monitoring
from streams.runtime import Runtime
from streams.storage import Storage, audit

_bearer = HTTPBearer(auto_error=False, description="A project API key: `Authorization: Bearer lw_…`")


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_storage(runtime: RuntimeDep) -> Storage:
    return runtime.storage


StorageDep = Annotated[Storage, Depends(get_storage)]


def publisher_of(runtime: Runtime) -> Publisher:
    """Where accepted events go: the embedded bus or Kafka (every process that serves the API has one)."""
    if runtime.publisher is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this process does not accept events")
    return runtime.publisher


async def get_publisher(runtime: RuntimeDep) -> Publisher:
    return publisher_of(runtime)


PublisherDep = Annotated[Publisher, Depends(get_publisher)]


async def get_monitoring(runtime: RuntimeDep) -> Monitoring:
    """The process's ``Monitoring``: ``streams.runtime`` makes one in every mode."""
    return runtime.monitoring


MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]


async def get_evaluations(runtime: RuntimeDep) -> Evaluations:
    """The process's online evaluators (``streams.runtime`` makes them in every mode)."""
    if runtime.evaluations is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this process does not serve evaluators")
    return runtime.evaluations


EvaluationsDep = Annotated[Evaluations, Depends(get_evaluations)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def _no_bearer(request: Request) -> HTTPException:
    """401 for a request without a bearer token, saying what its Authorization header lacks (never its value)."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        return _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if header.partition(" ")[0].lower() == "bearer":
        return _unauthorized("missing API key after 'Bearer': send 'Authorization: Bearer <key>'")
    return _unauthorized(
        "the Authorization header holds no bearer API key (is the 'Bearer ' before the key missing?): "
        "send 'Authorization: Bearer <key>'"
    )


async def current_key(request: Request, runtime: RuntimeDep, credentials: Credentials) -> ApiKey:
    """The project key behind the bearer token."""
    if credentials is None:
        raise _no_bearer(request)
    found, key = runtime.keys.cached(credentials.credentials)
    if not found:
        key = await asyncio.to_thread(runtime.keys.resolve, credentials.credentials)
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    if key.expired(runtime.keys.clock()):
        assert key.expires_at is not None
        raise _unauthorized(f"this API key expired at {key.expires_at.isoformat(timespec='seconds')}")
    if runtime.keys.due(key):  # at most once a minute per key: never a write per request
        await asyncio.to_thread(runtime.keys.used, key)
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


# What a key of a scope lacking a permission was refused, in the 403's words.
_NEEDS: dict[Permission, str] = {
    "ingest": "sending events",
    "read": "reading (queries, dashboards)",
    "manage": "managing the project (monitors, references, redaction policy)",
    "keys": "managing keys, erasing a user's data or reading the audit log",
    "review": "reviewing queue items (a key of scope 'review')",
}


def check_scope(key: ApiKey, permission: Permission) -> None:
    """403 unless ``key``'s scope allows ``permission`` (``streams.keys.SCOPE_PERMISSIONS``)."""
    if not key.allows(permission):
        which = f"has scope {key.scope!r}, which" if key.scope else "(made without a scope)"
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key {which} does not allow {_NEEDS[permission]}")


async def current_project(key: CurrentKey) -> str:
    """The key's project, for a key that may read: every route that answers with data uses it."""
    check_scope(key, "read")
    return key.project


async def ingest_project(key: CurrentKey) -> str:
    check_scope(key, "ingest")
    return key.project


async def managed_project(key: CurrentKey) -> str:
    check_scope(key, "manage")
    return key.project


ProjectDep = Annotated[str, Depends(current_project)]  # may read
IngestProjectDep = Annotated[str, Depends(ingest_project)]  # may send events
ManagedProjectDep = Annotated[str, Depends(managed_project)]  # may change the project's configuration


async def require_admin(request: Request, runtime: RuntimeDep, credentials: Credentials) -> None:
    admin = runtime.settings.admin_key
    if admin is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "key management over HTTP needs LOOPWATCH_ADMIN_KEY set")
    if credentials is None:
        raise _no_bearer(request)
    if not is_admin_token(admin, credentials.credentials):
        raise _unauthorized("admin key required")


AdminDep = Annotated[None, Depends(require_admin)]


async def keys_admin(request: Request, runtime: RuntimeDep, credentials: Credentials) -> str | None:
    """Who may manage keys: the admin key (every project: None) or a project key of scope ``admin``
    (its own project only)."""
    if credentials is not None and is_admin_token(runtime.settings.admin_key, credentials.credentials):
        return None
    key = await current_key(request, runtime, credentials)
    check_scope(key, "keys")
    return key.project


KeysAdminDep = Annotated[str | None, Depends(keys_admin)]


def administered_project(allowed: str | None, project: str | None) -> str:
    """The project an administrative call acts on (``allowed`` from ``KeysAdminDep``): a project admin
    key's own (``project``, if given, must be it); the server's admin key must name one."""
    if allowed is None:
        if project is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the admin key acts on every project: add ?project=NAME")
        return project
    if project is not None and project != allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key manages project {allowed!r}, not {project!r}")
    return allowed


async def current_actor(request: Request, runtime: RuntimeDep, credentials: Credentials) -> str:
    """Who is calling, as the audit log names them: ``admin`` or ``key:<key id>`` (after the route's own
    authorization dependency has accepted the caller: a cache hit, no I/O)."""
    if credentials is not None and is_admin_token(runtime.settings.admin_key, credentials.credentials):
        return audit.ADMIN
    key = await current_key(request, runtime, credentials)
    return audit.actor_of_key(key.key_id)


ActorDep = Annotated[str, Depends(current_actor)]
