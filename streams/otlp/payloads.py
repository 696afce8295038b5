"""OTLP/HTTP request bodies → ``opentelemetry-proto`` messages (protobuf or the OTLP JSON encoding).

OTLP's JSON is the protobuf JSON mapping with one exception: trace and span ids are hex, not base64.
``google.protobuf.json_format`` does the mapping (lowerCamelCase or original field names, int64 as
strings or numbers, unknown fields ignored); ids are rewritten from hex to base64 before it runs, and
an id that is not hex of the right length is left alone, so senders that use base64 still work.
Gzip bodies are inflated in bounded steps, so a small body cannot expand past the size limit.

Traces are decoded into a *view* of ``ExportTraceServiceRequest`` (``trace_view``): the same wire
format read through a message type whose ``attributes`` fields are ``map<string, AnyValue>``. A
protobuf map entry is encoded exactly like a ``KeyValue`` (key = 1, value = 2), so the bytes are the
same; what changes is the cost of reading them. Through ``repeated KeyValue`` every attribute costs
two Python wrapper objects before its key can be compared; through a map the mapping looks up the few
keys its tables name in C and wraps only those it finds (the hot loop of OTLP ingest: ~7 instead of
~8.5 µs of CPU per bench span; upb's wrappers stay the floor, ~4 µs just to read ten attributes).
The view keeps only the fields the mapping reads; the rest of the wire data is skipped by the parser.
If a sender repeats an attribute key (the data model forbids it), the last occurrence wins.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from functools import cache
from typing import Any, Literal, TypeVar

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2

Encoding = Literal["protobuf", "json"]
M = TypeVar("M", bound=Message)

_INFLATE_STEP = 1 << 20
# Where the ids sit in each signal: (container keys from the request down to the items, id fields).
_TRACE_PATH = (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",))
_LOGS_PATH = (("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs"), ("logRecords", "log_records"))
_METRICS_PATH = (("resourceMetrics", "resource_metrics"),)  # no ids to rewrite: exemplars are not read
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


def _parse(body: bytes, encoding: Encoding, message: M, path: tuple[tuple[str, ...], ...], name: str = "") -> M:
    if encoding == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:  # upb raises DecodeError; recursion limits others
            raise UndecodableBody(f"body is not a protobuf {name or type(message).__name__}") from exc
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


_VIEW_PACKAGE = "loopwatch.otlp.view"
_ANY_VALUE = ".opentelemetry.proto.common.v1.AnyValue"


@cache
def trace_view() -> type[Message]:
    """The message type of the traces view: the fields of ``opentelemetry.proto.trace.v1`` the mapping
    reads, with the same numbers and wire types, and every ``attributes`` a map (see the module doc)."""
    field = descriptor_pb2.FieldDescriptorProto
    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="loopwatch/otlp/trace_view.proto",
        package=_VIEW_PACKAGE,
        syntax="proto3",
        dependency=[common_pb2.DESCRIPTOR.name],
    )

    def message(name: str, fields: list[tuple[str, int, int, int, str]], with_attributes: int = 0) -> None:
        described = proto.message_type.add(name=name)
        if with_attributes:
            entry = described.nested_type.add(name="AttributesEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=one)
            entry.field.add(name="value", number=2, type=field.TYPE_MESSAGE, label=one, type_name=_ANY_VALUE)
            fields = [
                *fields,
                ("attributes", with_attributes, field.TYPE_MESSAGE, many, f".{_VIEW_PACKAGE}.{name}.AttributesEntry"),
            ]
        for field_name, number, kind, label, type_name in fields:
            added = described.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = type_name

    local = f".{_VIEW_PACKAGE}."
    message("Status", [("code", 3, field.TYPE_INT32, one, "")])  # an enum on the wire is a varint
    message(
        "Event",
        [("time_unix_nano", 1, field.TYPE_FIXED64, one, ""), ("name", 2, field.TYPE_STRING, one, "")],
        with_attributes=3,
    )
    message(
        "Span",
        [
            ("trace_id", 1, field.TYPE_BYTES, one, ""),
            ("span_id", 2, field.TYPE_BYTES, one, ""),
            ("name", 5, field.TYPE_STRING, one, ""),
            ("start_time_unix_nano", 7, field.TYPE_FIXED64, one, ""),
            ("end_time_unix_nano", 8, field.TYPE_FIXED64, one, ""),
            ("events", 11, field.TYPE_MESSAGE, many, local + "Event"),
            ("status", 15, field.TYPE_MESSAGE, one, local + "Status"),
        ],
        with_attributes=9,
    )
    message("ScopeSpans", [("spans", 2, field.TYPE_MESSAGE, many, local + "Span")])
    message("Resource", [], with_attributes=1)
    message(
        "ResourceSpans",
        [
            ("resource", 1, field.TYPE_MESSAGE, one, local + "Resource"),
            ("scope_spans", 2, field.TYPE_MESSAGE, many, local + "ScopeSpans"),
        ],
    )
    message("Traces", [("resource_spans", 1, field.TYPE_MESSAGE, many, local + "ResourceSpans")])
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName(f"{_VIEW_PACKAGE}.Traces")
    except KeyError:
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName(f"{_VIEW_PACKAGE}.Traces")
    return message_factory.GetMessageClass(descriptor)


def as_trace_view(request: ExportTraceServiceRequest) -> Message:
    """An ``ExportTraceServiceRequest`` (OTLP JSON decoded, or built by a caller) as the traces view."""
    view = trace_view()()
    view.ParseFromString(request.SerializeToString())
    return view


def decode_traces(body: bytes, encoding: Encoding) -> Message:
    """The traces view (``trace_view``) of an ``ExportTraceServiceRequest`` body."""
    if encoding == "protobuf":
        return _parse(body, encoding, trace_view()(), _TRACE_PATH, "ExportTraceServiceRequest")
    return as_trace_view(_parse(body, encoding, ExportTraceServiceRequest(), _TRACE_PATH))


def decode_logs(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    return _parse(body, encoding, ExportLogsServiceRequest(), _LOGS_PATH)


def decode_metrics(body: bytes, encoding: Encoding) -> ExportMetricsServiceRequest:
    return _parse(body, encoding, ExportMetricsServiceRequest(), _METRICS_PATH)


def encode_response(message: Message, encoding: Encoding) -> bytes:
    """The export response in the request's encoding, as OTLP/HTTP requires."""
    if encoding == "protobuf":
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))
