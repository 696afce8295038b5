"""``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics``: OTLP/HTTP ingest of GenAI telemetry.

Every export goes through ``_export``: content type, API key, body limit, gzip, then the signal's
handler, then the response in the request's encoding. The handlers decode with the official
``opentelemetry-proto`` classes (``streams.otlp.payloads``), map to records (``streams.otlp.mapping``
for spans, ``streams.otlp.logs`` for log records) and hand them to the same publisher as
``/v1/inferences`` and ``/v1/feedback``: in embedded mode the 200 waits for the durable write, in
distributed mode for the Kafka produce. Prompts and responses captured via log events land on the
inference of their span, in either order (``streams.storage.otlp_texts``).

Responses follow the OTLP/HTTP specification:

* 200 with an ``Export…ServiceResponse`` in the request's encoding, whose ``partial_success`` counts
  what could not become events and says why (GenAI spans without a model, evaluations without a span,
  every metric data point: loopwatch stores no metrics). Spans and logs that are not GenAI are
  ignored, not rejected. Exporters drop a ``partial_success`` on a 200 without a word, so rejected
  spans and log records are also logged with their reasons, counted and kept as dead letters
  (``_rejections``), which the dashboard's overview lists.
* Any error carries a ``google.rpc.Status`` (``code`` = the gRPC code of the HTTP status, ``message``)
  in the request's encoding: protobuf for ``application/x-protobuf``, the protobuf JSON mapping for
  ``application/json`` (and for a request whose content type is neither).
* 400 (undecodable), 401 (key), 413 (too large), 415 (content type or encoding) are final: OTLP
  exporters do not retry them. Only 503 (storage or bus unavailable, or the write not confirmed in
  time) is retryable, with ``Retry-After``; nothing here answers 429, since a full queue makes the
  request wait instead (backpressure) rather than refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from structlog import get_logger

from api.deps import Credentials, RuntimeDep, check_scope, current_key, publisher_of
from api.routes.ingest import read_body
from streams import metrics
from streams.bus import EventsRefused, Kind, NotWrittenYet
from streams.decode import EventTimePolicy, dead_letter
from streams.metrics import Signal
from streams.otlp.logs import count_data_points, map_logs
from streams.otlp.mapping import Mapped, map_traces
from streams.otlp.payloads import (
    BodyTooLarge,
    Encoding,
    UndecodableBody,
    decode_logs,
    decode_metrics,
    decode_traces,
    encode_response,
    gunzip,
    media_encoding,
)
from streams.runtime import Runtime
from streams.storage import StorageError, dead_letters
from streams.storage import otlp_texts as texts

log = get_logger(__name__)

_MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}
# google.rpc.Code of each HTTP status we answer (the gRPC ↔ HTTP mapping of the OTLP specification)
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 500: 13, 502: 14, 503: 14, 504: 14}
_ERRORS = {
    400: "body is not an OTLP export in its declared encoding",
    401: "missing, invalid or revoked API key",
    413: "body over the size limit (also once inflated)",
    415: "unsupported Content-Type or Content-Encoding",
    500: "unexpected server error",
    503: "storage or bus unavailable, or the write not confirmed in time: retry after Retry-After",
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_STATUS_JSON = {
    "type": "object",
    "description": "google.rpc.Status (protobuf JSON mapping)",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}


def _documented() -> dict[int | str, dict[str, Any]]:
    documented: dict[int | str, dict[str, Any]] = {
        code: {
            "description": f"{text}; a google.rpc.Status in the request's encoding",
            "content": {"application/x-protobuf": _BINARY, "application/json": {"schema": _STATUS_JSON}},
        }
        for code, text in _ERRORS.items()
    }
    documented[503]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return documented


router = APIRouter(prefix="/v1", tags=["opentelemetry"], responses=_documented())


def _doc(request_message: str, response_message: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": f"An OTLP `{request_message}`, protobuf or OTLP JSON, optionally gzip-compressed.",
            "content": {"application/x-protobuf": _BINARY, "application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": f"`{response_message}` in the request's encoding; `partial_success` counts "
                "what was rejected and why",
                "content": {"application/x-protobuf": _BINARY, "application/json": {"schema": {"type": "object"}}},
            }
        },
    }


def _encoded(
    message: Message, encoding: Encoding, code: int = status.HTTP_200_OK, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(encode_response(message, encoding), code, headers=headers, media_type=_MEDIA[encoding])


def _error(code: int, message: str, encoding: Encoding, headers: Mapping[str, str] | None = None) -> Response:
    """An OTLP error response: a ``google.rpc.Status`` in the request's encoding."""
    return _encoded(Status(code=_GRPC_CODES.get(code, 2), message=message), encoding, code, headers)


async def _read(request: Request, max_bytes: int) -> bytes:
    """The body within ``max_bytes``, inflated if gzip (``HTTPException`` 413 / 400 / 415 otherwise)."""
    body = await read_body(request, max_bytes)
    content_encoding = request.headers.get("content-encoding", "").strip().lower()
    if content_encoding == "gzip":
        try:
            return gunzip(body, max_bytes)
        except BodyTooLarge as exc:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
        except UndecodableBody as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    if content_encoding not in ("", "identity"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "Content-Encoding must be gzip or identity")
    return body


Handler = Callable[[bytes, Encoding, str, Runtime], Awaitable[Message]]


async def _export(
    request: Request, runtime: Runtime, credentials: Credentials, handle: Handler, kind: Kind | None
) -> Response:
    """What every OTLP/HTTP export shares: checks, reading, errors and the response encoding."""
    encoding = media_encoding(request.headers.get("content-type"))
    reply: Encoding = encoding or "json"  # a request in neither encoding is answered in JSON
    try:
        key = await current_key(request, runtime, credentials)  # the key before anything else: 401 first
        check_scope(key, "ingest")
        if encoding is None:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send application/x-protobuf or application/json (OTLP/HTTP)"
            )
        body = await _read(request, runtime.settings.max_body_bytes)
        return _encoded(await handle(body, encoding, key.project, runtime), encoding)
    except HTTPException as exc:
        _rejected(kind, exc.status_code)
        return _error(exc.status_code, str(exc.detail), reply, exc.headers)
    except UndecodableBody as exc:
        _rejected(kind, 400)
        return _error(400, str(exc), reply)
    except EventsRefused as exc:  # not retryable: storage refuses these records for their content
        _rejected(kind, 400)
        return _error(400, str(exc), reply)
    except StorageError as exc:
        detail = (
            f"{exc}: resend the export (span ids make it idempotent)"
            if isinstance(exc, NotWrittenYet)
            else "storage unavailable, retry later"
        )
        return _error(503, detail, reply, {"Retry-After": "1"})
    except Exception:
        log.exception("otlp.failed", path=request.url.path)
        return _error(500, "unexpected server error", reply)


def _rejected(kind: Kind | None, code: int) -> None:
    if kind is not None and 400 <= code < 500:
        metrics.events_rejected(kind, code)


async def _rejections(signal: Signal, project: str, mapped: Mapped[Any], runtime: Runtime) -> None:
    """What an export could not store, told to operators (exporters drop ``partial_success`` on a 200):
    a log line with the reasons (no attribute values, so no prompt text), a counter, and dead letters
    (the first ``MAX_REJECTIONS`` of the export) that the dashboard lists."""
    if not mapped.rejected:
        return
    log.warning(
        "otlp.rejected",
        signal=signal,
        project=project,
        accepted=len(mapped.records),
        rejected=mapped.rejected,
        ignored=mapped.ignored,
        reasons=mapped.message,
    )
    metrics.otlp_rejected(signal, mapped.rejected)
    letters = [
        dead_letter(f"otlp_{signal}", rejection.reason, rejection.payload(), project) for rejection in mapped.rejections
    ]
    metrics.dead_lettered(letters)
    try:
        await asyncio.to_thread(dead_letters.store, runtime.storage, letters)
    except StorageError as exc:  # the export's events are stored; its answer still says what was rejected
        log.warning(
            "otlp.dead_letters_not_stored", signal=signal, project=project, letters=len(letters), error=str(exc)
        )


async def _traces(body: bytes, encoding: Encoding, project: str, runtime: Runtime) -> Message:
    latest = EventTimePolicy.of(runtime.settings).rules().latest
    mapped = map_traces(decode_traces(body, encoding), project, latest)
    if any(record.prompt is None and record.response is None for record in mapped.records):
        await asyncio.to_thread(texts.fill_records, runtime.storage, project, mapped.records)
    await publisher_of(runtime).publish_inferences(mapped.records)
    metrics.events_accepted("inference", "http", len(mapped.records))
    await _rejections("traces", project, mapped, runtime)
    response = ExportTraceServiceResponse()
    if mapped.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=mapped.rejected, error_message=mapped.message)
        )
    return response


async def _logs(body: bytes, encoding: Encoding, project: str, runtime: Runtime) -> Message:
    mapped = map_logs(decode_logs(body, encoding), project)
    await publisher_of(runtime).publish_feedback(mapped.records)
    metrics.events_accepted("feedback", "http", len(mapped.records))
    if mapped.texts and runtime.privacy is not None:  # the texts are stored: redacted first
        mapped.texts = await asyncio.to_thread(runtime.privacy.log_texts, project, mapped.texts)
    if mapped.texts:  # stored first, then joined: see streams.storage.otlp_texts for why this order
        await asyncio.to_thread(texts.store, runtime.storage, project, mapped.texts)
        completed = await asyncio.to_thread(texts.complete_stored, runtime.storage, project, mapped.texts)
        log.info("otlp.texts", project=project, texts=len(mapped.texts), completed=completed)
    await _rejections("logs", project, mapped, runtime)
    response = ExportLogsServiceResponse()
    if mapped.rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=mapped.rejected, error_message=mapped.message)
        )
    return response


async def _metrics(body: bytes, encoding: Encoding, project: str, runtime: Runtime) -> Message:
    points = count_data_points(decode_metrics(body, encoding))
    response = ExportMetricsServiceResponse()
    if points:
        response.partial_success.CopyFrom(
            ExportMetricsPartialSuccess(
                rejected_data_points=points,
                error_message="loopwatch stores no OTLP metrics: token usage, durations and errors are read from the "
                "GenAI spans (send traces to /v1/traces); these data points were dropped and need no retry",
            )
        )
    return response


@router.post(
    "/traces",
    summary="OTLP/HTTP traces: GenAI spans become inference events",
    openapi_extra=_doc("ExportTraceServiceRequest", "ExportTraceServiceResponse"),
    response_class=Response,
)
async def post_traces(request: Request, runtime: RuntimeDep, credentials: Credentials) -> Response:
    return await _export(request, runtime, credentials, _traces, "inference")


@router.post(
    "/logs",
    summary="OTLP/HTTP logs: GenAI evaluation events become feedback",
    openapi_extra=_doc("ExportLogsServiceRequest", "ExportLogsServiceResponse"),
    response_class=Response,
)
async def post_logs(request: Request, runtime: RuntimeDep, credentials: Credentials) -> Response:
    return await _export(request, runtime, credentials, _logs, "feedback")


@router.post(
    "/metrics",
    summary="OTLP/HTTP metrics: accepted and dropped, with a partial_success saying why",
    openapi_extra=_doc("ExportMetricsServiceRequest", "ExportMetricsServiceResponse"),
    response_class=Response,
)
async def post_metrics(request: Request, runtime: RuntimeDep, credentials: Credentials) -> Response:
    return await _export(request, runtime, credentials, _metrics, None)
