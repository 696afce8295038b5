"""``/v1/subjects/{user_id}``: erase one user's events and feedback (the project's admin key, or the
server's admin key naming the project)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import ActorDep, KeysAdminDep, RuntimeDep, administered_project
from api.errors import responses
from schemas.events import ProjectName
from streams.privacy.erasure import erase_subject
from streams.storage import audit

router = APIRouter(prefix="/v1/subjects", tags=["privacy"], responses=responses(400, 401, 403, 503))


class ErasureOut(BaseModel):
    project: str
    subject: str = Field(description="a hash of the user id: what the audit log records")
    deleted: dict[str, int] = Field(description="rows removed per table; a repeated erasure removes 0")
    statistics: str = Field(description="window statistics are aggregates and are kept")


@router.delete("/{user_id}", response_model=ErasureOut, summary="Erase a user's events and feedback everywhere")
async def erase(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    allowed: KeysAdminDep,
    actor: ActorDep,
    runtime: RuntimeDep,
    project: Annotated[ProjectName | None, Query(description="with the server's admin key: the project")] = None,
) -> ErasureOut:
    """Removes the events tagged ``user_id`` (``tags.user_id``), the feedback on them and the feedback the user
    gave, their OTLP texts and dead letters naming them. Idempotent."""
    target = administered_project(allowed, project)
    storage = runtime.storage
    done = await asyncio.to_thread(erase_subject, storage, target, user_id)
    counts = done.counts()
    await asyncio.to_thread(
        audit.record, storage, actor, "subject.erase", project=target, target=done.subject, details=counts
    )
    return ErasureOut(project=target, subject=done.subject, deleted=counts, statistics="kept")
