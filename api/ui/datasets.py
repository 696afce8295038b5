"""Datasets: every version with its size, hash and the query that made it, download links, and a form
that snapshots the feedback explorer's filters as the next version of a dataset (the API's own code)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.responses import StreamingResponse

from api.routes.datasets import download_response, found, query_of, version_out
from api.ui.feedback import _filter
from api.ui.web import UiDep, UiManageDep, UiRoute, first, quote_path, redirect
from schemas.events import FeedbackKind
from streams.datasets import snapshot
from streams.storage.datasets import FORMATS, NAME_PATTERN, DatasetFormat, DatasetStore

router = APIRouter(prefix="/ui", route_class=UiRoute)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
VersionPath = Annotated[int, Path(ge=1, le=4_294_967_295)]
_NAME = re.compile(NAME_PATTERN)


@router.get("/datasets")
async def datasets_page(ui: UiDep) -> Response:
    versions = await asyncio.to_thread(DatasetStore(ui.runtime.storage).versions, ui.project)
    return ui.render(
        "datasets.html",
        versions=[version_out(v) for v in versions],
        formats=FORMATS,
        kinds=[k.value for k in FeedbackKind],
    )


@router.post("/datasets")
async def create(ui: UiManageDep) -> Response:
    fields = await ui.form()
    name, fmt = first(fields, "name"), first(fields, "format")
    if not _NAME.match(name):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "name: letters, digits, '.', '_' and '-' (up to 120), e.g. support-sft",
        )
    formats: dict[str, DatasetFormat] = {f: f for f in FORMATS}
    if fmt not in formats:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"format: one of {', '.join(FORMATS)}")
    flt = await _filter(
        ui,
        first(fields, "model"),
        first(fields, "model_version"),
        fields.get("kind", []),
        first(fields, "source"),
        first(fields, "since"),
        first(fields, "until"),
        [t for t in first(fields, "tag").split(",") if t.strip()],
    )
    store = DatasetStore(ui.runtime.storage)
    version = await asyncio.to_thread(
        snapshot,
        store,
        ui.project,
        name,
        query_of(flt),
        formats[fmt],
        created_by=ui.actor,
    )
    return redirect(f"/ui/datasets/{quote_path(version.name)}/{version.version}")


@router.get("/datasets/{name}/{version}")
async def version_page(ui: UiDep, name: NamePath, version: VersionPath) -> Response:
    got = await asyncio.to_thread(found, DatasetStore(ui.runtime.storage), ui.project, name, version)
    return ui.render("dataset.html", v=version_out(got))


@router.get("/datasets/{name}/{version}/download")
async def download(ui: UiDep, name: NamePath, version: VersionPath) -> StreamingResponse:
    got = await asyncio.to_thread(found, DatasetStore(ui.runtime.storage), ui.project, name, version)
    return download_response(ui.runtime.storage, got)
