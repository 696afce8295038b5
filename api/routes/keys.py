"""Key management over HTTP: the admin key (every project), or a project key of scope ``admin`` (its own
project). ``loopwatch keys`` does the same locally."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from api.deps import ActorDep, KeysAdminDep, RuntimeDep
from api.errors import responses, unprocessable
from api.responses import KeyCreated, KeyInfo
from schemas.events import ProjectName
from streams.keys import ApiKey, KeyScope, NewKey
from streams.storage import audit

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=responses(400, 401, 403, 404, 503))
KeyId = Annotated[str, Path(max_length=64)]


class KeyRequest(BaseModel):
    project: ProjectName
    name: str = Field(default="", max_length=200)
    scope: KeyScope | None = Field(
        default=None,
        description="ingest: only sends events; read: dashboards and queries; admin: manages the project; "
        "none: full project access",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="when the key stops working: in the future, else 422; null: never"
    )


def _whole_number(value: object) -> object:
    """JSON's integers only: ``false`` or ``"60"`` is no number of seconds (``60.0`` is sixty)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a whole number of seconds")
    return value


class RotateRequest(BaseModel):
    grace_seconds: Annotated[int, BeforeValidator(_whole_number)] = Field(
        default=86400, ge=0, le=90 * 86400, description="how long the old key keeps working (default one day)"
    )


def _info(key: ApiKey, now: datetime) -> KeyInfo:
    return KeyInfo(
        key_id=key.key_id,
        project=key.project,
        name=key.name,
        created_at=key.created_at,
        revoked=key.revoked,
        scope=key.scope or None,
        expires_at=key.expires_at,
        expired=key.expired(now),
        rotated_from=key.rotated_from or None,
        last_used_at=key.last_used_at,
    )


def _created(new: NewKey) -> KeyCreated:
    key = new.key
    return KeyCreated(
        key_id=key.key_id,
        project=key.project,
        name=key.name,
        token=new.token,
        scope=key.scope or None,
        expires_at=key.expires_at,
        rotated_from=key.rotated_from or None,
    )


def _only(allowed: str | None, project: str) -> None:
    if allowed is not None and project != allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key manages project {allowed!r}, not {project!r}")


def _own(allowed: str | None, key_id: str, runtime: RuntimeDep) -> None:
    if allowed is not None and key_id not in {key.key_id for key in runtime.keys.list(allowed)}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r} in project {allowed!r}")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=responses(422),
    summary="Create a project key",
)
def create_key(body: KeyRequest, allowed: KeysAdminDep, actor: ActorDep, runtime: RuntimeDep) -> KeyCreated:
    _only(allowed, body.project)
    if body.expires_at is not None and body.expires_at <= runtime.keys.clock():
        raise unprocessable(["body", "expires_at"], "expires_at must be in the future")
    new = runtime.keys.create(body.project, body.name, body.scope, expires_at=body.expires_at)
    _audit(runtime, actor, "key.create", new.key)
    return _created(new)


def _audit(runtime: RuntimeDep, actor: str, action: str, key: ApiKey, **details: str | None) -> None:
    facts = {"scope": key.scope or "full", "expires_at": key.expires_at.isoformat() if key.expires_at else None}
    audit.record(runtime.storage, actor, action, project=key.project, target=key.key_id, details=facts | details)


@router.get("", response_model=list[KeyInfo], summary="List keys (never their tokens), with expiry and last use")
def list_keys(allowed: KeysAdminDep, runtime: RuntimeDep, project: str | None = None) -> list[KeyInfo]:
    if allowed is not None:
        _only(allowed, project or allowed)
        project = allowed
    now = runtime.keys.clock()
    return [_info(k, now) for k in runtime.keys.list(project)]


@router.post(
    "/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Rotate a key: a new token now, the old one works until the grace period ends",
)
def rotate_key(
    key_id: KeyId, allowed: KeysAdminDep, actor: ActorDep, runtime: RuntimeDep, body: RotateRequest | None = None
) -> KeyCreated:
    _own(allowed, key_id, runtime)
    grace = timedelta(seconds=(body or RotateRequest()).grace_seconds)
    new = runtime.keys.rotate(key_id, grace)
    if new is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no live key {key_id!r} (unknown, revoked or expired)")
    _audit(runtime, actor, "key.rotate", new.key, replaces=key_id, grace=str(grace))
    return _created(new)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key")
def revoke_key(key_id: KeyId, allowed: KeysAdminDep, actor: ActorDep, runtime: RuntimeDep) -> None:
    _own(allowed, key_id, runtime)
    if not runtime.keys.revoke(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
    key = runtime.keys.get(key_id)
    assert key is not None  # just revoked
    _audit(runtime, actor, "key.revoke", key)
