"""``POST /v1/traces`` and ``POST /v1/logs``: OTLP/HTTP ingest of GenAI spans and evaluation events.

The body is read with the ingest routes' size limit, inflated (gzip) under the same limit, decoded with
the official ``opentelemetry-proto`` classes (``streams.otlp.decode``), mapped to records
(``streams.otlp.mapping``) and handed to the same publisher as ``/v1/inferences`` and ``/v1/feedback``:
in embedded mode the 200 waits for the durable write, in distributed mode for the Kafka produce.

Responses follow OTLP/HTTP: 200 with an ``Export…ServiceResponse`` in the request's encoding, whose
``partial_success`` counts the GenAI spans (or evaluation records) that could not become events and
says why; spans that are not GenAI are ignored, not rejected. 400 (undecodable), 413 (too large),
415 (unsupported content type or encoding) are final; only 503 (storage or bus unavailable, with
``Retry-After``) invites a retry, because only then can one help.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from structlog import get_logger

from api.deps import ProjectDep, ServicesDep
from api.errors import responses
from api.routes.ingest import _read_body
from streams import metrics
from streams.otlp.decode import (
    BodyTooLarge,
    Encoding,
    UndecodableBody,
    decode_logs,
    decode_traces,
    encode_response,
    gunzip,
    media_encoding,
)
from streams.otlp.mapping import Mapped, map_logs, map_traces

router = APIRouter(prefix="/v1", tags=["opentelemetry"], responses=responses(400, 401, 413, 415, 503))
log = get_logger(__name__)

_MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}


def _body_doc(message: str) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "description": f"An OTLP `{message}`, protobuf or OTLP JSON, optionally gzip-compressed.",
            "content": {"application/x-protobuf": binary, "application/json": {"schema": {"type": "object"}}},
        }
    }


async def _read(request: Request, max_bytes: int) -> tuple[bytes, Encoding]:
    encoding = media_encoding(request.headers.get("content-type"))
    if encoding is None:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send application/x-protobuf or application/json (OTLP/HTTP)"
        )
    body = await _read_body(request, max_bytes)
    content_encoding = request.headers.get("content-encoding", "").strip().lower()
    if content_encoding == "gzip":
        try:
            body = gunzip(body, max_bytes)
        except BodyTooLarge as exc:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
        except UndecodableBody as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    elif content_encoding not in ("", "identity"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "Content-Encoding must be gzip or identity")
    return body, encoding


def _respond(message: Message, encoding: Encoding) -> Response:
    return Response(encode_response(message, encoding), status.HTTP_200_OK, media_type=_MEDIA[encoding])


def _logged(signal: str, project: str, mapped: Mapped[Any]) -> None:
    if mapped.rejected:
        log.info("otlp.partial", signal=signal, project=project, accepted=len(mapped.records),
                 rejected=mapped.rejected, ignored=mapped.ignored)  # fmt: skip


@router.post("/traces", summary="OTLP/HTTP traces: GenAI spans become inference events", openapi_extra=_body_doc(
    "ExportTraceServiceRequest"), response_class=Response)  # fmt: skip
async def post_traces(request: Request, project: ProjectDep, services: ServicesDep) -> Response:
    body, encoding = await _read(request, services.settings.max_body_bytes)
    try:
        export = decode_traces(body, encoding)
    except UndecodableBody as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    mapped = map_traces(export, project)
    await services.publisher.publish_inferences(mapped.records)
    metrics.events_accepted("inference", "http", len(mapped.records))
    _logged("traces", project, mapped)
    response = ExportTraceServiceResponse()
    if mapped.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=mapped.rejected, error_message=mapped.message)
        )
    return _respond(response, encoding)


@router.post("/logs", summary="OTLP/HTTP logs: GenAI evaluation events become feedback", openapi_extra=_body_doc(
    "ExportLogsServiceRequest"), response_class=Response)  # fmt: skip
async def post_logs(request: Request, project: ProjectDep, services: ServicesDep) -> Response:
    body, encoding = await _read(request, services.settings.max_body_bytes)
    try:
        export = decode_logs(body, encoding)
    except UndecodableBody as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    mapped = map_logs(export, project)
    await services.publisher.publish_feedback(mapped.records)
    metrics.events_accepted("feedback", "http", len(mapped.records))
    _logged("logs", project, mapped)
    response = ExportLogsServiceResponse()
    if mapped.rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=mapped.rejected, error_message=mapped.message)
        )
    return _respond(response, encoding)
