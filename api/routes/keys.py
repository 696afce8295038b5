"""Key management over HTTP, for the admin key only (``loopwatch keys`` does the same locally)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from api.deps import AdminDep, ServicesDep
from api.errors import responses
from api.models import KeyCreated, KeyInfo
from schemas.events import ProjectName

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=responses(400, 401, 403, 404, 503))


class KeyRequest(BaseModel):
    project: ProjectName
    name: str = Field(default="", max_length=200)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, summary="Create a project key")
def create_key(body: KeyRequest, _: AdminDep, services: ServicesDep) -> KeyCreated:
    new = services.keys.create(body.project, body.name)
    return KeyCreated(key_id=new.key.key_id, project=new.key.project, name=new.key.name, token=new.token)


@router.get("", response_model=list[KeyInfo], summary="List keys (never their tokens)")
def list_keys(_: AdminDep, services: ServicesDep, project: str | None = None) -> list[KeyInfo]:
    return [
        KeyInfo(key_id=k.key_id, project=k.project, name=k.name, created_at=k.created_at, revoked=k.revoked)
        for k in services.keys.list(project)
    ]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a key")
def revoke_key(key_id: Annotated[str, Path(max_length=64)], _: AdminDep, services: ServicesDep) -> None:
    if not services.keys.revoke(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
