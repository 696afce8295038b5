"""Static files: our own CSS/JS from ``api/ui/static`` and Plotly's bundle from the installed
``plotly`` package (no CDN at run time, no third-party copy in the repository)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.ui.web import UiRoute

router = APIRouter(prefix="/ui", route_class=UiRoute)
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_CACHE = {"Cache-Control": "public, max-age=3600"}


@functools.cache
def _own_files() -> dict[str, Path]:
    folder = Path(str(resources.files("api.ui") / "static"))
    return {path.name: path for path in folder.iterdir() if path.suffix in _TYPES}


@functools.cache
def plotly_bundle() -> Path:
    """``plotly/package_data/plotly.min.js`` of the installed plotly (evidently depends on it)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_bundle(), media_type=_TYPES[".js"], headers=_CACHE)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = _own_files().get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_CACHE)
