"""One inference with its feedback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import ProjectDep, StorageDep
from api.errors import responses
from api.models import InferenceDetail
from api.queries.inferences import inference_detail

router = APIRouter(prefix="/v1/inferences", tags=["inferences"], responses=responses(401, 404, 503))


@router.get("/{event_id}", response_model=InferenceDetail, summary="An inference and all of its feedback")
def get_inference(
    event_id: Annotated[str, Path(min_length=1, max_length=128)], project: ProjectDep, storage: StorageDep
) -> dict[str, Any]:
    detail = inference_detail(storage, project, event_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inference {event_id!r} in project {project!r}")
    return detail
