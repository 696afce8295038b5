"""``/v1/privacy/policy``: the project's redaction policy (read by ``read`` keys, changed by ``admin``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from api.deps import ActorDep, ManagedProjectDep, ProjectDep, RuntimeDep
from api.errors import responses, unprocessable
from schemas.privacy import RedactionPolicy
from streams.privacy import Privacy
from streams.runtime import Runtime
from streams.storage import audit

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
