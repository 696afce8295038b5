"""``/v1/privacy/policy``: the project's redaction policy, and ``/v1/privacy/retention``: how long it keeps
each kind of data (both read by ``read`` keys, changed by ``admin``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from api.deps import ActorDep, ManagedProjectDep, ProjectDep, RuntimeDep
from api.errors import responses, unprocessable
from schemas.privacy import RedactionPolicy, RetentionPolicy
from streams.privacy import Privacy
from streams.runtime import Runtime
from streams.storage import audit, retention_policies

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=responses(400, 401, 403, 503))


class PolicyOut(BaseModel):
    project: str
    policy: RedactionPolicy
    own: bool = Field(description="false: the server's default (LOOPWATCH_REDACTION_MODE) applies")


def _privacy(runtime: Runtime) -> Privacy:
    if runtime.privacy is None:  # not reachable: every process that serves the API has one
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this process does not redact events")
    return runtime.privacy


@router.get("/policy", response_model=PolicyOut, summary="The redaction policy that applies to the project")
async def get_policy(project: ProjectDep, runtime: RuntimeDep) -> PolicyOut:
    policy, own = await asyncio.to_thread(_privacy(runtime).policy, project)
    return PolicyOut(project=project, policy=policy, own=own)


@router.put("/policy", response_model=PolicyOut, responses=responses(422), summary="Set the project's redaction policy")
async def put_policy(
    body: RedactionPolicy, project: ManagedProjectDep, actor: ActorDep, runtime: RuntimeDep
) -> PolicyOut:
    privacy = _privacy(runtime)
    try:
        await asyncio.to_thread(privacy.set_policy, project, body)
    except ValueError as exc:  # e.g. pseudonyms on a server without LOOPWATCH_REDACTION_KEY
        raise unprocessable(["body", "mode"], str(exc)) from exc
    details: dict[str, audit.Detail] = {"mode": body.mode, "fields": ",".join(body.fields), "custom": len(body.custom)}
    await asyncio.to_thread(audit.record, runtime.storage, actor, "policy.set", project=project, details=details)
    return PolicyOut(project=project, policy=body, own=True)


@router.delete("/policy", response_model=PolicyOut, summary="Back to the server's default redaction policy")
async def delete_policy(project: ManagedProjectDep, actor: ActorDep, runtime: RuntimeDep) -> PolicyOut:
    privacy = _privacy(runtime)
    if await asyncio.to_thread(privacy.set_policy, project, None):
        await asyncio.to_thread(audit.record, runtime.storage, actor, "policy.delete", project=project)
    policy, own = await asyncio.to_thread(privacy.policy, project)
    return PolicyOut(project=project, policy=policy, own=own)


class RetentionOut(BaseModel):
    project: str
    policy: RetentionPolicy
    own: bool = Field(description="false: no policy of the project's own; only the server's TTLs apply")


@router.get("/retention", response_model=RetentionOut, summary="The project's retention per kind of data")
async def get_retention(project: ProjectDep, runtime: RuntimeDep) -> RetentionOut:
    policy = await asyncio.to_thread(retention_policies.get, runtime.storage, project)
    return RetentionOut(project=project, policy=policy or RetentionPolicy(), own=policy is not None)


@router.put("/retention", response_model=RetentionOut, responses=responses(422), summary="Set the project's retention")
async def put_retention(
    body: RetentionPolicy, project: ManagedProjectDep, actor: ActorDep, runtime: RuntimeDep
) -> RetentionOut:
    await asyncio.to_thread(retention_policies.put, runtime.storage, project, body)
    details: dict[str, audit.Detail] = {kind: days for kind, days in body.days().items()}
    await asyncio.to_thread(audit.record, runtime.storage, actor, "retention.set", project=project, details=details)
    return RetentionOut(project=project, policy=body, own=True)


@router.delete("/retention", response_model=RetentionOut, summary="Remove the project's retention policy")
async def delete_retention(project: ManagedProjectDep, actor: ActorDep, runtime: RuntimeDep) -> RetentionOut:
    if await asyncio.to_thread(retention_policies.delete, runtime.storage, project):
        await asyncio.to_thread(audit.record, runtime.storage, actor, "retention.delete", project=project)
    return RetentionOut(project=project, policy=RetentionPolicy(), own=False)
