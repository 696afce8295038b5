"""Static files: our own CSS/JS from ``api/ui/static`` and Plotly's bundle from the installed
``plotly`` package (no CDN at run time, no third-party copy in the repository).

The bundle is served less one statement. plotly.js registers its map traces when it loads, and
registering them runs webpack's style-loader, which appends maplibre's CSS to ``<head>`` as an inline
``<style>``: the CSP refuses it (two console errors on every chart page). The dashboard draws no map,
so ``plotly_js_source`` removes that call, ``"map"===name&&require(id)`` in the registry, and nothing
else; a plotly release that spells it otherwise is served as installed and the browser tests, which
fail on any console error, say so.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources
from pathlib import Path

import structlog
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import FileResponse

from api.ui.web import UiRoute

router = APIRouter(prefix="/ui", route_class=UiRoute)
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_CACHE = {"Cache-Control": "public, max-age=3600"}
# The registry's `"map"===p&&r(96144)` (minified names and module id vary between releases).
MAP_CSS_INJECTION = re.compile(rb'"map"===[A-Za-z_$][\w$]*&&[A-Za-z_$][\w$]*\(\d+\)')
log = structlog.get_logger(__name__)


@functools.cache
def _own_files() -> dict[str, Path]:
    folder = Path(str(resources.files("api.ui") / "static"))
    return {path.name: path for path in folder.iterdir() if path.suffix in _TYPES}


@functools.cache
def plotly_bundle() -> Path:
    """``plotly/package_data/plotly.min.js`` of the installed plotly (evidently depends on it)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@functools.cache
def plotly_js_source() -> tuple[bytes, str]:
    """The installed bundle without its maplibre CSS injection (see the module docstring), and its ETag."""
    source = plotly_bundle().read_bytes()
    served, found = MAP_CSS_INJECTION.subn(b"!1", source)
    if found != 1:
        log.warning("plotly_map_css_kept", matches=found, bundle=str(plotly_bundle()))
        served = source
    return served, '"' + hashlib.sha256(served).hexdigest()[:32] + '"'


@router.get("/static/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    body, etag = plotly_js_source()
    headers = {**_CACHE, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=_TYPES[".js"], headers=headers)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = _own_files().get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_CACHE)
