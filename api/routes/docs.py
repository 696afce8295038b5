"""``/docs`` (Swagger UI) from the installed ``swagger-ui-bundle`` package, and ``/`` sending people to
the dashboard.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline script: offline it is
a blank page, and no strict Content-Security-Policy allows it. Here the page, its assets and the few
lines that start it are all served by loopwatch, under the dashboard's policy (``api.ui.web.CSP``).
"""

from __future__ import annotations

import functools
from html import escape
from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.ui.web import SECURITY_HEADERS

router = APIRouter(include_in_schema=False)

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
_CACHE = {"Cache-Control": "public, max-age=3600"}
# Starts Swagger UI on the API's own OpenAPI (served as a file, since the policy runs no inline script).
_START = """window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapi,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>loopwatch API</title>
<link rel="stylesheet" href="{root}/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{root}/openapi.json"></div>
<script src="{root}/docs/static/swagger-ui-bundle.js"></script>
<script src="{root}/docs/static/start.js"></script>
</body>
</html>
"""


@functools.cache
def _assets() -> dict[str, Path]:
    """Swagger UI's distribution files in the installed package (no CDN, no copy in the repository)."""
    folder = Path(swagger_ui_bundle.swagger_ui_path)
    return {path.name: path for path in folder.iterdir() if path.suffix in _TYPES}


@router.get("/")
def root(request: Request) -> RedirectResponse:
    """The service's address leads to the dashboard (the API lives under /v1, its docs at /docs)."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/ui", status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    page = _PAGE.format(root=escape(request.scope.get("root_path", "")))
    return HTMLResponse(page, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.get("/docs/static/start.js")
def start_js() -> Response:
    return Response(_START, media_type=_TYPES[".js"], headers={**SECURITY_HEADERS, **_CACHE})


@router.get("/docs/static/{name}")
def asset(name: str) -> FileResponse:
    path = _assets().get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {name!r} in Swagger UI's distribution")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={**SECURITY_HEADERS, **_CACHE})
