"""``/v1/datasets``: named, versioned, immutable snapshots of feedback in training formats."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import ManagedProjectDep, ProjectDep, StorageDep
from api.errors import responses
from api.queries.feedback import FeedbackFilter
from api.routes.feedback import FilterDep
from streams.datasets import EXTENSIONS, MEDIA_TYPES, render, snapshot
from streams.storage import Storage
from streams.storage.datasets import NAME_PATTERN, DatasetFormat, DatasetQuery, DatasetStore, DatasetVersion

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=responses(400, 401, 403, 503))

NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="the dataset's name")]
VersionPath = Annotated[int, Path(ge=1, le=4_294_967_295)]


async def dataset_store(storage: StorageDep) -> DatasetStore:
    return DatasetStore(storage)


DatasetsDep = Annotated[DatasetStore, Depends(dataset_store)]


class DatasetCreate(BaseModel):
    """A new version of ``name``: the feedback the query parameters select now (the filters of
    ``/v1/feedback/export``), or the reviews of a review queue."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_' and '-' (up to 120)")
    format: DatasetFormat = Field(description="jsonl, chat (SFT), dpo (corrections only), csv or parquet")
    queue_id: str | None = Field(default=None, max_length=128, description="snapshot this review queue's reviews")


class DatasetOut(BaseModel):
    name: str
    version: int
    format: DatasetFormat
    rows: int
    bytes: int
    sha256: str = Field(description="SHA-256 of the download's bytes")
    query: dict[str, Any] = Field(description="the selection that made it")
    created_at: datetime
    created_by: str
    request_id: str = Field(description="the retraining request it was made for ('' if none)")
    download_url: str
    dashboard_url: str


class DatasetList(BaseModel):
    items: list[DatasetOut]


def version_out(version: DatasetVersion) -> dict[str, Any]:
    path = f"{quote(version.name, safe='')}/versions/{version.version}"
    return {
        "name": version.name,
        "version": version.version,
        "format": version.format,
        "rows": version.row_count,
        "bytes": version.byte_count,
        "sha256": version.sha256,
        "query": version.query.as_json(),
        "created_at": version.created_at,
        "created_by": version.created_by,
        "request_id": version.request_id,
        "download_url": f"/v1/datasets/{path}/download",
        "dashboard_url": f"/ui/datasets/{quote(version.name, safe='')}/{version.version}",
    }


def query_of(flt: FeedbackFilter, queue_id: str | None = None) -> DatasetQuery:
    """The feedback filter of the listing and export as a snapshot's query."""
    return DatasetQuery(
        model=flt.model,
        model_version=flt.model_version,
        kinds=tuple(flt.kinds),
        source=flt.source,
        since=flt.since,
        until=flt.until,
        tags=tuple(sorted(flt.tags.items())),
        queue_id=queue_id,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    summary="Snapshot the selected feedback as the next version of a dataset",
    responses=responses(422),
)
async def create_dataset(
    body: DatasetCreate, flt: FilterDep, project: ManagedProjectDep, datasets: DatasetsDep
) -> dict[str, Any]:
    version = await asyncio.to_thread(
        snapshot, datasets, project, body.name, query_of(flt, body.queue_id), body.format, created_by="api"
    )
    return version_out(version)


@router.get("", response_model=DatasetList, summary="Dataset versions, newest first")
async def list_datasets(
    project: ProjectDep,
    datasets: DatasetsDep,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> dict[str, Any]:
    versions = await asyncio.to_thread(datasets.versions, project, name)
    return {"items": [version_out(v) for v in versions]}


def found(datasets: DatasetStore, project: str, name: str, version: int) -> DatasetVersion:
    got = datasets.get(project, name, version)
    if got is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset {name!r} has no version {version} in this project")
    return got


@router.get("/{name}/versions/{version}", response_model=DatasetOut, responses=responses(404))
async def get_dataset(
    project: ProjectDep, datasets: DatasetsDep, name: NamePath, version: VersionPath
) -> dict[str, Any]:
    return version_out(await asyncio.to_thread(found, datasets, project, name, version))


def download_response(storage: Storage, version: DatasetVersion) -> StreamingResponse:
    """The version's bytes, streamed page by page; ``ETag`` is their SHA-256."""
    filename = f"{version.name}-v{version.version}.{EXTENSIONS[version.format]}"
    return StreamingResponse(
        render(DatasetStore(storage), version),
        media_type=MEDIA_TYPES[version.format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{version.sha256}"',
            "Content-Length": str(version.byte_count),
        },
    )


@router.get(
    "/{name}/versions/{version}/download",
    summary="Download a version (streamed; its bytes hash to its sha256)",
    response_class=StreamingResponse,
    responses={**responses(404), 200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}}},
)
async def download_dataset(
    project: ProjectDep, datasets: DatasetsDep, storage: StorageDep, name: NamePath, version: VersionPath
) -> StreamingResponse:
    return download_response(storage, await asyncio.to_thread(found, datasets, project, name, version))
