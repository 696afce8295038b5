"""Drift references: pin a time range of a model's own traffic, or upload a dataset."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field, ValidationError

from api.deps import ManagedProjectDep, ProjectDep, RuntimeDep
from api.errors import responses, unprocessable
from api.queries.windows import sampled_columns
from api.time_range import storable, storable_range
from schemas.stats import WindowKey
from streams.stats.references import Reference, ReferenceStore, columns_from_records

router = APIRouter(prefix="/v1/models", tags=["references"], responses=responses(400, 401, 404, 413, 422, 503))

ModelName = Annotated[str, Path(min_length=1, max_length=200)]


class RangeRequest(BaseModel):
    """Pin the model's own traffic between ``start`` and ``end`` (naive = UTC) as the reference."""

    start: datetime = Field(description="inclusive; before `end`, else 422")
    end: datetime = Field(description="exclusive")


class ReferenceInfo(BaseModel):
    model: str
    kind: str
    rows: int
    columns: list[str]
    range_start: datetime | None
    range_end: datetime | None
    created_at: datetime | None


def _info(reference: Reference) -> ReferenceInfo:
    return ReferenceInfo(
        model=reference.model,
        kind=reference.kind,
        rows=reference.rows,
        columns=sorted(reference.profile.columns),
        range_start=reference.range_start,
        range_end=reference.range_end,
        created_at=reference.created_at,
    )


def _records(body: bytes, fmt: str) -> list[dict[str, Any]]:
    try:
        if fmt == "jsonl":
            return [orjson.loads(line) for line in body.splitlines() if line.strip()]
        import pandas as pd

        frame = pd.read_csv(io.BytesIO(body)) if fmt == "csv" else pd.read_parquet(io.BytesIO(body))
        # CSV headers and parquet column names are strings; pandas types record keys as any Hashable
        return cast("list[dict[str, Any]]", frame.to_dict(orient="records"))
    except Exception as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot read the {fmt} dataset: {exc}") from exc


@router.post(
    "/{model}/reference",
    response_model=ReferenceInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Set the drift reference: JSON {start, end} pins a time range; a jsonl/csv/parquet body uploads one",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": RangeRequest.model_json_schema()},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def set_reference(
    model: ModelName,
    request: Request,
    project: ManagedProjectDep,
    runtime: RuntimeDep,
    format: Annotated[
        Literal["jsonl", "csv", "parquet"] | None,
        Query(description="a dataset's format (default: from the content type, else jsonl); not with a JSON range"),
    ] = None,
) -> ReferenceInfo:
    body = await request.body()
    if len(body) > runtime.settings.max_body_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {runtime.settings.max_body_bytes} bytes")
    store: ReferenceStore = runtime.references
    storage, settings = runtime.storage, runtime.settings
    content_type = request.headers.get("content-type", "")
    if "json" in content_type and "ndjson" not in content_type:  # a JSON body is a time range
        if format is not None:
            raise unprocessable(
                ["query", "format"],
                "a JSON body is a time range; send a dataset as text/csv, "
                "application/x-ndjson or application/vnd.apache.parquet",
            )
        try:
            window = RangeRequest.model_validate_json(body)
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_context=False, include_input=False)
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems) from exc
        storable_range(window.start, window.end, "body", ("start", "end"))  # ordered, else 422
        start, end = storable(window.start), storable(window.end)
        from starlette.concurrency import run_in_threadpool

        columns = await run_in_threadpool(
            sampled_columns, storage, WindowKey(project, model, start, end), settings.drift_sample_rows * 4
        )
        if columns.rows == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inferences of {model!r} between {start} and {end}")
        reference = await run_in_threadpool(
            store.save, project, model, "range", columns, range_start=start, range_end=end
        )
        return _info(reference)
    fmt = format or ("csv" if "csv" in content_type else "jsonl")
    records = _records(body, fmt)
    if not records:
        raise unprocessable(["body"], "the dataset has no rows")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise unprocessable(["body", index], "each dataset row must be an object of column values")
    from starlette.concurrency import run_in_threadpool

    columns = columns_from_records(records)
    if not columns.columns:
        raise unprocessable(["body"], "the dataset has no columns (feature values, prompt or response) to compare")
    reference = await run_in_threadpool(store.save, project, model, "dataset", columns)
    return _info(reference)


@router.get("/{model}/reference", response_model=ReferenceInfo, summary="The model's current drift reference")
def get_reference(model: ModelName, project: ProjectDep, runtime: RuntimeDep) -> ReferenceInfo:
    reference = runtime.references.get(project, model)
    if reference is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{model!r} has no reference yet (the first window sets one)")
    return _info(reference)
