"""``/v1/audit``: who changed keys, monitors, the redaction policy, erased a user or exported raw text."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import KeysAdminDep, RuntimeDep, administered_project
from api.errors import responses
from api.time_range import Since, Until, storable_range
from schemas.events import ProjectName
from streams.storage import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=responses(400, 401, 403, 503))


class AuditOut(BaseModel):
    at: datetime
    project: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]


@router.get("", response_model=list[AuditOut], summary="The audit log, newest first (admin scope)")
async def audit_log(
    allowed: KeysAdminDep,
    runtime: RuntimeDep,
    project: Annotated[ProjectName | None, Query(description="with the server's admin key: one project")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. key.create, subject.erase")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """A project admin key reads its project's entries; the server's admin key every project's (or one)."""
    if allowed is not None:
        project = administered_project(allowed, project)
    since, until = storable_range(since, until)
    found = await asyncio.to_thread(
        audit.entries, runtime.storage, project=project, action=action, since=since, until=until, limit=limit
    )
    return [AuditOut(**{name: getattr(entry, name) for name in AuditOut.model_fields}) for entry in found]
