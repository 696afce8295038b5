"""The FastAPI application: wiring only. Routes live in ``api.routes``; the process it serves is built by
its caller (``loopwatch.process``, the composition root) and handed in — the API starts nothing itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from api.errors import ErrorMessage, Unprocessable, finite
from api.routes import (
    alerts,
    audit,
    datasets,
    docs,
    evaluators,
    feedback,
    inferences,
    ingest,
    keys,
    models,
    monitors,
    ops,
    otlp,
    privacy,
    queues,
    references,
    reports,
    stats,
    subjects,
)
from api.ui import router as ui_router
from schemas.events import FeedbackEvent, InferenceEvent
from streams import metrics
from streams.bus import NotWrittenYet
from streams.runtime import Runtime
from streams.storage import StorageError

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI documents on ``path``, for the ``Allow`` header of a 405."""
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations if method in _HTTP_METHODS}
    return sorted(methods)


# What a server process hands the app when it does not own an already running runtime: entered when the
# server starts (yielding the running runtime), exited when it stops — uvicorn's lifespan, so a SIGTERM
# stops the server first and then the runtime, which writes what it buffered.
RuntimeContext = Callable[[], AbstractAsyncContextManager[Runtime]]


def create_app(runtime: Runtime | RuntimeContext) -> FastAPI:
    """Build the app around ``runtime``: a running ``Runtime`` its caller stops (tests, the demo), or a
    ``RuntimeContext`` that starts one with the server (``loopwatch.process.serving_app``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(runtime, Runtime):
            yield
            return
        async with runtime() as running:
            app.state.runtime = running
            yield

    app = FastAPI(
        title="loopwatch",
        version="0.1.0",
        description="Monitoring and feedback for LLM and ML models in production.",
        lifespan=lifespan,
        docs_url=None,  # api.routes.docs serves Swagger UI without a CDN
        redoc_url=None,
    )
    if isinstance(runtime, Runtime):
        app.state.runtime = runtime
    for module in (ingest, otlp, feedback, inferences, models, references, stats, reports, monitors, alerts, keys, ops):
        app.include_router(module.router)
    app.include_router(datasets.router)  # /v1/datasets
    app.include_router(queues.router)  # /v1/queues
    app.include_router(docs.router)  # / → /ui, and /docs
    app.include_router(privacy.router)  # /v1/privacy (redaction policy)
    app.include_router(subjects.router)  # /v1/subjects (erasure)
    app.include_router(audit.router)  # /v1/audit
    app.include_router(evaluators.router)  # /v1/evaluators (online evaluations)
    app.include_router(ui_router)  # the dashboard at /ui (api/ui)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = ingest.ENDPOINT_KINDS.get(request.scope.get("endpoint"))
        if kind is not None and 400 <= exc.status_code < 500:
            metrics.events_rejected(kind, exc.status_code)
        if exc.status_code == 405:  # Starlette names the first route of the path only (GET and POST may differ)
            allowed = _allowed_methods(app, request.url.path)
            if allowed:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 (its list of problems), writable whatever number the input held."""
        return JSONResponse({"detail": finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(StorageError)
    async def storage_unavailable(_: Request, exc: StorageError) -> JSONResponse:
        detail = (
            f"{exc}: resend the request (event ids make it idempotent)"
            if isinstance(exc, NotWrittenYet)
            else "storage unavailable, retry later"
        )
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    def openapi() -> dict[str, Any]:
        # Ingest routes read raw bytes for speed; publish the event contracts they validate against.
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (InferenceEvent, FeedbackEvent, ErrorMessage, Unprocessable):
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
            for event in (InferenceEvent, FeedbackEvent):  # over HTTP the API key supplies the project
                properties, required = components[event.__name__]["properties"], components[event.__name__]["required"]
                required.remove("project")
                properties["project"]["description"] = "default: the API key's project; any other is refused (403)"
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
