"""OTLP/HTTP request bodies → ``opentelemetry-proto`` messages (protobuf or the OTLP JSON encoding).

OTLP's JSON is the protobuf JSON mapping with one exception: trace and span ids are hex, not base64.
``google.protobuf.json_format`` does the mapping (lowerCamelCase or original field names, int64 as
strings or numbers, unknown fields ignored); ids are rewritten from hex to base64 before it runs, and
an id that is not hex of the right length is left alone, so senders that use base64 still work.
Gzip bodies are inflated in bounded steps, so a small body cannot expand past the size limit.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, Literal, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Encoding = Literal["protobuf", "json"]
M = TypeVar("M", bound=Message)

_INFLATE_STEP = 1 << 20
# Where the ids sit in each signal: (container keys from the request down to the items, id fields).
_TRACE_PATH = (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",))
_LOGS_PATH = (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records"))
_ID_FIELDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


class UndecodableBody(ValueError):
    """The body is not a message of the expected type in the declared encoding (HTTP 400)."""


class BodyTooLarge(ValueError):
    """The body, once inflated, exceeds the size limit (HTTP 413)."""


def media_encoding(content_type: str | None) -> Encoding | None:
    """``application/x-protobuf`` or ``application/json`` (parameters ignored); None = unsupported."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/x-protobuf":
        return "protobuf"
    if media == "application/json":
        return "json"
    return None


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """Inflate a gzip body without ever holding more than ``max_bytes`` of output (plus one step)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    size = 0
    pending = body
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_STEP)
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"body inflates past {max_bytes} bytes")
            out.append(chunk)
            pending = inflater.unconsumed_tail
            if not pending and (inflater.eof or not chunk):
                break
    except zlib.error as exc:
        raise UndecodableBody(f"body is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise UndecodableBody("gzip body is truncated")
    return b"".join(out)


def _hex_to_base64(value: Any, size: int) -> Any:
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            return value
    return value


def _rewrite_ids(items: Any, path: tuple[tuple[str, ...], ...]) -> None:
    """Hex ids → base64 in place, in the items at ``path`` and in their span links."""
    if not path:
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                for key, size in _ID_FIELDS.items():
                    if key in item:
                        item[key] = _hex_to_base64(item[key], size)
                for link in item.get("links") or ():
                    if isinstance(link, dict):
                        for key, size in _ID_FIELDS.items():
                            if key in link:
                                link[key] = _hex_to_base64(link[key], size)
        return
    for container in items if isinstance(items, list) else ():
        if isinstance(container, dict):
            for key in path[0]:
                _rewrite_ids(container.get(key), path[1:])


def _parse(body: bytes, encoding: Encoding, message: M, path: tuple[tuple[str, ...], ...]) -> M:
    if encoding == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:  # upb raises DecodeError; recursion limits others
            raise UndecodableBody(f"body is not a protobuf {type(message).__name__}") from exc
        return message
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UndecodableBody(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UndecodableBody(f"body must be a JSON object ({type(message).__name__})")
    for key in path[0]:
        _rewrite_ids(document.get(key), path[1:])
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise UndecodableBody(f"body is not an OTLP JSON {type(message).__name__}: {exc}") from exc
    return message


def decode_traces(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    return _parse(body, encoding, ExportTraceServiceRequest(), _TRACE_PATH)


def decode_logs(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    return _parse(body, encoding, ExportLogsServiceRequest(), _LOGS_PATH)


def encode_response(message: Message, encoding: Encoding) -> bytes:
    """The export response in the request's encoding, as OTLP/HTTP requires."""
    if encoding == "protobuf":
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))
