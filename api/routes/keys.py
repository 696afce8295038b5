"""Key management over HTTP: the admin key (every project), or a project key of scope ``admin`` (its own
project). ``loopwatch keys`` does the same locally."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from api.deps import KeysAdminDep, ServicesDep
from api.errors import responses
from api.models import KeyCreated, KeyInfo
from schemas.events import ProjectName
from streams.keys import ApiKey, KeyScope

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=responses(400, 401, 403, 404, 503))


class KeyRequest(BaseModel):
    project: ProjectName
    name: str = Field(default="", max_length=200)
    scope: KeyScope | None = Field(
        default=None,
        description="ingest: only sends events; read: dashboards and queries; admin: manages the project; "
        "none: full project access",
    )


def _info(key: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=key.key_id,
        project=key.project,
        name=key.name,
        created_at=key.created_at,
        revoked=key.revoked,
        scope=key.scope or None,
    )


def _only(allowed: str | None, project: str) -> None:
    if allowed is not None and project != allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key manages project {allowed!r}, not {project!r}")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, summary="Create a project key")
def create_key(body: KeyRequest, allowed: KeysAdminDep, services: ServicesDep) -> KeyCreated:
    _only(allowed, body.project)
    new = services.keys.create(body.project, body.name, body.scope)
    return KeyCreated(
        key_id=new.key.key_id, project=new.key.project, name=new.key.name, token=new.token, scope=body.scope
    )


@router.get("", response_model=list[KeyInfo], summary="List keys (never their tokens)")
def list_keys(allowed: KeysAdminDep, services: ServicesDep, project: str | None = None) -> list[KeyInfo]:
    if allowed is not None:
        _only(allowed, project or allowed)
        project = allowed
    return [_info(k) for k in services.keys.list(project)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key")
def revoke_key(key_id: Annotated[str, Path(max_length=64)], allowed: KeysAdminDep, services: ServicesDep) -> None:
    if allowed is not None and key_id not in {key.key_id for key in services.keys.list(allowed)}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r} in project {allowed!r}")
    if not services.keys.revoke(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
