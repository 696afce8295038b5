"""OTLP/HTTP ingest with the real OpenTelemetry SDK, its OTLP exporter and real GenAI instrumentations.

The app runs under uvicorn on 127.0.0.1 (embedded pipeline, chDB); the ``openai`` client talks to a
small OpenAI-compatible server the test runs on 127.0.0.1; the instrumentations and the SDK exporter
send what they send, and the test reads the stored events back through the API.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from tests.conftest import make_settings

RESOURCE = Resource.create(
    {"service.name": "support-bot", "service.version": "2.1.0", "deployment.environment.name": "prod"}
)


# --- an OpenAI-compatible server on loopback ---------------------------------------------------------


class _FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: a fixed answer with usage; model ``broken`` gets a 400."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if request["model"] == "broken":
            self._send(400, {"error": {"message": "bad model", "type": "invalid_request_error", "code": "bad"}})
            return
        self._send(
            200,
            {
                "id": "chatcmpl-42",
                "object": "chat.completion",
                "created": 1_780_000_000,
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Paris is the capital."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 21,
                    "completion_tokens": 6,
                    "total_tokens": 27,
                    "prompt_tokens_details": {"cached_tokens": 5},
                },
            },
        )

    def _send(self, code: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(serving_app(make_settings(data_dir)), free_port()) as running:
        storage = running.app.state.runtime.storage
        yield running
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _token(server: BackgroundServer, project: str) -> str:
    return str(server.app.state.runtime.keys.create(project, "otel").token)


def _providers(
    server: BackgroundServer, token: str, monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[TracerProvider, LoggerProvider]:
    """The SDK as an app configures it: OTLP/HTTP protobuf exporters with the key in the headers.

    With ``monkeypatch``, configured only by the two environment variables the README gives.
    """
    if monkeypatch is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
        span_exporter, log_exporter = OTLPSpanExporter(), OTLPLogExporter()
    else:
        headers = {"Authorization": f"Bearer {token}"}
        span_exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers=headers)
        log_exporter = OTLPLogExporter(endpoint=f"{server.url}/v1/logs", headers=headers)
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    return tracer_provider, logger_provider


def _inference(server: BackgroundServer, token: str, event_id: str) -> dict:
    response = httpx.get(f"{server.url}/v1/inferences/{event_id}", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _event_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}{context.span_id:016x}"


def _evaluate(logger_provider: LoggerProvider, span: ReadableSpan, name: str, score: float, label: str) -> None:
    """A ``gen_ai.evaluation.result`` event in the context of the evaluated span, as evaluators emit it."""
    context = trace.set_span_in_context(trace.NonRecordingSpan(span.get_span_context()))
    logger_provider.get_logger("evaluator").emit(
        event_name="gen_ai.evaluation.result",
        context=context,
        attributes={
            "gen_ai.evaluation.name": name,
            "gen_ai.evaluation.score.value": score,
            "gen_ai.evaluation.score.label": label,
            "gen_ai.evaluation.explanation": "grounded in the context",
        },
    )


class _Recorder(SpanExporter):
    """Keeps the spans an instrumentation produced, so the test knows their ids."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans.extend(spans)  # type: ignore[arg-type]
        return SpanExportResult.SUCCESS


# --- real instrumentations ---------------------------------------------------------------------------


class TestOfficialOpenAIInstrumentation:
    """``opentelemetry-instrumentation-openai-v2`` (latest GenAI semconv, content on the span) → events."""

    def test_chat_call_becomes_an_inference_with_tokens_cost_content_and_an_evaluation(
        self, server: BackgroundServer, fake_openai: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
        token = _token(server, "otel-v2")
        tracer_provider, logger_provider = _providers(server, token, monkeypatch)
        recorder = _Recorder()
        tracer_provider.add_span_processor(SimpleSpanProcessor(recorder))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
        try:
            client = openai.OpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)
            answer = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of France?"},
                ],
            )
            assert answer.choices[0].message.content == "Paris is the capital."
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
        finally:
            instrumentor.uninstrument()
        ok_span, error_span = recorder.spans
        _evaluate(logger_provider, ok_span, "relevance", 0.875, "relevant")
        tracer_provider.shutdown()
        logger_provider.shutdown()

        stored = _inference(server, token, _event_id(ok_span))
        assert stored["model"] == "gpt-4o-mini"
        assert stored["provider"] == "openai"
        assert stored["model_version"] == "2.1.0"
        assert (stored["input_tokens"], stored["output_tokens"]) == (21, 6)  # 2.4b0 reports no cached tokens
        assert stored["status"] == "ok"
        assert stored["latency_ms"] == pytest.approx((ok_span.end_time - ok_span.start_time) / 1e6, abs=0.01)
        assert "Capital of France?" in stored["prompt"]
        assert "Be brief." in stored["prompt"]
        assert stored["response"] == "Paris is the capital."
        assert stored["cost_usd"] is not None
        assert stored["cost_usd"] > 0
        assert stored["tags"]["service"] == "support-bot"
        assert stored["tags"]["environment"] == "prod"
        assert stored["tags"]["operation"] == "chat"
        [feedback] = stored["feedback"]
        assert (feedback["kind"], feedback["name"], feedback["value"]) == ("score", "relevance", 0.875)
        assert feedback["source"] == "evaluator"

        failed = _inference(server, token, _event_id(error_span))
        assert failed["status"] == "error"
        assert failed["model"] == "broken"
        assert "BadRequestError" in failed["error_type"]


class TestOpenInferenceInstrumentation:
    """``openinference-instrumentation-openai`` (``llm.*`` attributes, ``input.value``) → events."""

    def test_chat_call_becomes_an_inference(self, server: BackgroundServer, fake_openai: str) -> None:
        from openinference.instrumentation.openai import OpenAIInstrumentor

        token = _token(server, "otel-oi")
        tracer_provider, _ = _providers(server, token)
        recorder = _Recorder()
        tracer_provider.add_span_processor(SimpleSpanProcessor(recorder))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        try:
            client = openai.OpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}]
            )
        finally:
            instrumentor.uninstrument()
        tracer_provider.shutdown()
        [span] = recorder.spans
        stored = _inference(server, token, _event_id(span))
        assert stored["model"].startswith("gpt-4o-mini")
        assert stored["provider"] == "openai"
        assert (stored["input_tokens"], stored["output_tokens"]) == (21, 6)
        assert stored["status"] == "ok"
        assert stored["prompt"] == "Capital of France?"
        assert stored["response"] == "Paris is the capital."
        assert stored["cost_usd"] is not None
        assert stored["cost_usd"] > 0


# --- spans made with the SDK, sent as protobuf or OTLP JSON ---------------------------------------------


def _spans(make: list[tuple[str, dict, bool]]) -> list[ReadableSpan]:
    """Finished SDK spans: (name, attributes, failed) each, under one resource."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    for name, attributes, failed in make:
        with tracer.start_as_current_span(name, attributes=attributes) as span:
            if failed:
                span.set_status(trace.StatusCode.ERROR, "upstream failed")
    return list(memory.get_finished_spans())


def _otlp_json(spans: list[ReadableSpan], hex_ids: bool = True) -> bytes:
    """The OTLP JSON encoding: protobuf JSON mapping with hex ids (base64 ids when ``hex_ids`` is off)."""
    document = json_format.MessageToDict(encode_spans(spans))
    if hex_ids:
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(document)


def _post(
    server: BackgroundServer,
    token: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    path: str = "/v1/traces",
    **headers: str,
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        content=body,
        timeout=30,
        headers={"authorization": f"Bearer {token}", "content-type": content_type, **headers},
    )


def _partial(response: httpx.Response) -> tuple[int, str]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        body = response.json().get("partialSuccess", {})
        return int(body.get("rejectedSpans", 0)), body.get("errorMessage", "")
    parsed = ExportTraceServiceResponse.FromString(response.content)
    return parsed.partial_success.rejected_spans, parsed.partial_success.error_message


CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


class TestEncodings:
    """Protobuf, OTLP JSON (hex or base64 ids), gzip: the same events."""

    @pytest.mark.parametrize(
        ("encoding", "hex_ids", "compressed"),
        [("protobuf", True, False), ("protobuf", True, True), ("json", True, False), ("json", False, True)],
    )
    def test_each_encoding_stores_the_span(
        self, server: BackgroundServer, encoding: str, hex_ids: bool, compressed: bool
    ) -> None:
        token = _token(server, f"enc-{encoding}-{hex_ids}-{compressed}")
        [span] = _spans([("chat gpt-4o-mini", {**CHAT, "gen_ai.conversation.id": "conv-7"}, False)])
        body = encode_spans([span]).SerializeToString() if encoding == "protobuf" else _otlp_json([span], hex_ids)
        headers = {"content-encoding": "gzip"} if compressed else {}
        if compressed:
            body = gzip.compress(body)
        content_type = "application/x-protobuf" if encoding == "protobuf" else "application/json; charset=utf-8"
        assert _partial(_post(server, token, body, content_type, **headers)) == (0, "")
        stored = _inference(server, token, _event_id(span))
        assert (stored["input_tokens"], stored["output_tokens"]) == (100, 20)
        assert stored["tags"]["conversation_id"] == "conv-7"

    def test_json_with_unknown_fields_and_int64_as_numbers(self, server: BackgroundServer) -> None:
        token = _token(server, "enc-lenient")
        [span] = _spans([("chat", CHAT, False)])
        document = orjson.loads(_otlp_json([span]))
        raw = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        raw["startTimeUnixNano"] = int(raw["startTimeUnixNano"])  # a number, not a string
        raw["someFutureField"] = {"x": 1}
        document["alsoUnknown"] = True
        assert _partial(_post(server, token, orjson.dumps(document), "application/json")) == (0, "")
        assert _inference(server, token, _event_id(span))["model"] == "gpt-4o-mini"

    def test_reexport_is_idempotent(self, server: BackgroundServer) -> None:
        token = _token(server, "enc-again")
        spans = _spans([("chat", CHAT, False), ("chat", CHAT, False)])
        for _ in range(3):
            assert _partial(_post(server, token, encode_spans(spans).SerializeToString())) == (0, "")
        response = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {token}"})
        assert [model["inferences"] for model in response.json()] == [2]


class TestRefusals:
    """Bodies that cannot be read get a final 4xx; the size limit holds after inflating too."""

    def test_malformed_protobuf_is_400(self, server: BackgroundServer) -> None:
        token = _token(server, "bad-proto")
        [span] = _spans([("chat", CHAT, False)])
        good = encode_spans([span]).SerializeToString()
        for body in (b"\xff\xff\xff\xff", good[: len(good) // 2], b"\x0a\xff\xff\xff\xff\x0f"):
            assert _post(server, token, body).status_code == 400

    def test_malformed_json_is_400(self, server: BackgroundServer) -> None:
        token = _token(server, "bad-json")
        for body in (
            b"{",
            b"[1, 2]",
            b'{"resourceSpans": 7}',
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz!"}]}]}]}',
        ):
            assert _post(server, token, body, "application/json").status_code == 400, body

    def test_wrong_content_type_and_encoding_are_415(self, server: BackgroundServer) -> None:
        token = _token(server, "bad-type")
        [span] = _spans([("chat", CHAT, False)])
        body = encode_spans([span]).SerializeToString()
        assert _post(server, token, body, "text/plain").status_code == 415
        assert _post(server, token, body, "application/x-protobuf", **{"content-encoding": "br"}).status_code == 415

    def test_no_key_is_401(self, server: BackgroundServer) -> None:
        response = httpx.post(
            f"{server.url}/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"}
        )
        assert response.status_code == 401

    def test_gzip_bomb_is_413_and_broken_gzip_is_400(self, server: BackgroundServer) -> None:
        token = _token(server, "bomb")
        limit = server.app.state.runtime.settings.max_body_bytes
        bomb = gzip.compress(b"\x00" * (limit + 1024 * 1024), compresslevel=9)
        assert len(bomb) < limit // 100
        assert _post(server, token, bomb, **{"content-encoding": "gzip"}).status_code == 413
        [span] = _spans([("chat", CHAT, False)])
        truncated = gzip.compress(encode_spans([span]).SerializeToString())[:-12]
        assert _post(server, token, truncated, **{"content-encoding": "gzip"}).status_code == 400
        assert _post(server, token, b"not gzip", **{"content-encoding": "gzip"}).status_code == 400

    def test_body_over_the_limit_is_413(self, server: BackgroundServer) -> None:
        token = _token(server, "big")
        limit = server.app.state.runtime.settings.max_body_bytes
        assert _post(server, token, b"\x00" * (limit + 1)).status_code == 413


class TestPartialSuccess:
    """Spans that cannot become events are counted and named; the rest of the export is kept."""

    def test_mix_of_valid_invalid_and_non_genai_spans(self, server: BackgroundServer) -> None:
        token = _token(server, "mix")
        hostile_text = "x" * 100_000
        spans = _spans(
            [
                ("chat ok", CHAT, False),
                ("GET /health", {"http.request.method": "GET", "url.path": "/health"}, False),  # not GenAI: ignored
                ("chat no model", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}, False),
                ("chat negative", {**CHAT, "gen_ai.usage.input_tokens": -5}, False),
                ("chat huge model", {**CHAT, "gen_ai.request.model": "m" * 5_000}, False),
                ("chat nan cost", {**CHAT, "gen_ai.usage.cost": float("nan")}, False),
                (
                    "chat hostile but fine",
                    {
                        **CHAT,
                        "gen_ai.input.messages": hostile_text,
                        "gen_ai.output.messages": "[[[{",
                        "gen_ai.conversation.id": "c" * 10_000,
                        "user.id": ["a", "b"],
                        "gen_ai.usage.output_tokens": "12",
                        "gen_ai.response.time_to_first_chunk": "oops",
                    },
                    True,
                ),
                ("SELECT", {"db.system.name": "postgresql"}, False),  # not GenAI: ignored
            ]
        )
        rejected, message = _partial(_post(server, token, encode_spans(spans).SerializeToString()))
        assert rejected == 4
        assert "no model" in message
        assert message.count("span ") == 4
        ok = _inference(server, token, _event_id(spans[0]))
        assert ok["status"] == "ok"
        hostile = _inference(server, token, _event_id(spans[6]))
        assert hostile["status"] == "error"
        assert hostile["error_type"] == "error"
        assert len(hostile["prompt"]) == 32_000
        assert hostile["response"] == "[[[{"
        assert len(hostile["tags"]["conversation_id"]) == 256
        assert hostile["output_tokens"] == 12
        for index in (1, 2, 3, 4, 5, 7):
            missing = httpx.get(
                f"{server.url}/v1/inferences/{_event_id(spans[index])}", headers={"authorization": f"Bearer {token}"}
            )
            assert missing.status_code == 404

    def test_json_request_gets_a_json_partial_success(self, server: BackgroundServer) -> None:
        token = _token(server, "mix-json")
        spans = _spans([("chat", CHAT, False), ("chat", {"gen_ai.operation.name": "chat"}, False)])
        response = _post(server, token, _otlp_json(spans), "application/json")
        assert response.headers["content-type"].startswith("application/json")
        rejected, message = _partial(response)
        assert rejected == 1
        assert "no model" in message


class TestEvaluations:
    """``gen_ai.evaluation.result`` log records → feedback on the span's inference, in either order."""

    def test_evaluation_before_the_span_joins_when_the_span_arrives(self, server: BackgroundServer) -> None:
        token = _token(server, "eval-early")
        tracer_provider, logger_provider = _providers(server, token)
        [span] = _spans([("chat", CHAT, False)])
        _evaluate(logger_provider, span, "faithfulness", 0.5, "partly")
        logger_provider.shutdown()
        assert _partial(_post(server, token, encode_spans([span]).SerializeToString())) == (0, "")
        stored = _inference(server, token, _event_id(span))
        [feedback] = stored["feedback"]
        assert (feedback["kind"], feedback["name"], feedback["value"]) == ("score", "faithfulness", 0.5)
        assert feedback["text"] == "partly — grounded in the context"
        tracer_provider.shutdown()

    def test_label_only_and_invalid_evaluations(self, server: BackgroundServer) -> None:
        token = _token(server, "eval-label")
        [span] = _spans([("chat", CHAT, False)])
        _post(server, token, encode_spans([span]).SerializeToString())
        memory_logs = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=RESOURCE)
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory_logs))
        logger = provider.get_logger("evaluator")
        context = trace.set_span_in_context(trace.NonRecordingSpan(span.get_span_context()))
        logger.emit(
            event_name="gen_ai.evaluation.result",
            context=context,
            attributes={"gen_ai.evaluation.name": "toxicity", "gen_ai.evaluation.score.label": "safe"},
        )
        logger.emit(
            event_name="gen_ai.evaluation.result", context=context, attributes={"gen_ai.evaluation.name": "empty"}
        )  # neither score nor label: rejected
        logger.emit(
            event_name="gen_ai.evaluation.result",
            attributes={"gen_ai.evaluation.name": "orphan", "gen_ai.evaluation.score.value": 1.0},
        )  # no span
        logger.emit(body="an ordinary log line", context=context)  # not an evaluation: ignored
        provider.shutdown()
        body = encode_logs(memory_logs.get_finished_logs()).SerializeToString()
        response = _post(server, token, body, path="/v1/logs")
        assert response.status_code == 200, response.text
        parsed = ExportLogsServiceResponse.FromString(response.content)
        assert parsed.partial_success.rejected_log_records == 2
        [feedback] = _inference(server, token, _event_id(span))["feedback"]
        assert (feedback["kind"], feedback["name"], feedback["value"]) == ("label", "toxicity", "safe")


# --- OTLP/HTTP error bodies, metrics, large exports ----------------------------------------------------


def _status(response: httpx.Response, encoding: str) -> Status:
    """The ``google.rpc.Status`` of an error response, decoded in the encoding the request used."""
    media = "application/x-protobuf" if encoding == "protobuf" else "application/json"
    assert response.headers["content-type"].split(";")[0] == media, response.headers
    if encoding == "protobuf":
        return Status.FromString(response.content)
    return json_format.Parse(response.content, Status())


class TestErrorBodies:
    """Errors carry a ``google.rpc.Status`` in the request's encoding (OTLP/HTTP), with the gRPC code."""

    @pytest.mark.parametrize("encoding", ["protobuf", "json"])
    def test_final_errors(self, server: BackgroundServer, encoding: str) -> None:
        token = _token(server, f"status-{encoding}")
        media = "application/x-protobuf" if encoding == "protobuf" else "application/json"
        garbage = b"\xff\xff\xff\xff" if encoding == "protobuf" else b"{"
        limit = server.app.state.runtime.settings.max_body_bytes
        cases = [
            (_post(server, token, garbage, media), 400, 3),
            (_post(server, token, garbage, media, path="/v1/logs"), 400, 3),
            (httpx.post(f"{server.url}/v1/traces", content=garbage, headers={"content-type": media}), 401, 16),
            (_post(server, "lw_not-a-key", garbage, media, path="/v1/logs"), 401, 16),
            (_post(server, token, b"\x00" * (limit + 1), media), 413, 8),
            (_post(server, token, garbage, media, **{"content-encoding": "br"}), 415, 3),
            (_post(server, token, b"not gzip", media, **{"content-encoding": "gzip"}), 400, 3),
        ]
        for response, http_status, grpc_code in cases:
            assert response.status_code == http_status, response.content
            assert "retry-after" not in response.headers  # final: OTLP exporters do not retry these
            status = _status(response, encoding)
            assert status.code == grpc_code
            assert status.message
        assert "API key" in _status(cases[2][0], encoding).message

    def test_unknown_content_type_gets_a_json_status(self, server: BackgroundServer) -> None:
        response = _post(server, _token(server, "status-type"), b"x", "text/plain")
        assert response.status_code == 415
        assert "application/x-protobuf" in _status(response, "json").message

    @pytest.mark.parametrize("encoding", ["protobuf", "json"])
    def test_write_not_confirmed_is_a_retryable_503(self, data_dir: Path, encoding: str) -> None:
        settings = make_settings(data_dir, ack_timeout_seconds=1e-6)
        with BackgroundServer(serving_app(settings), free_port()) as slow:
            token = _token(slow, "status-503")
            [span] = _spans([("chat", CHAT, False)])
            body = encode_spans([span]).SerializeToString() if encoding == "protobuf" else _otlp_json([span])
            media = "application/x-protobuf" if encoding == "protobuf" else "application/json"
            response = _post(slow, token, body, media)
            storage = slow.app.state.runtime.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        status = _status(response, encoding)
        assert status.code == 14  # UNAVAILABLE
        assert "resend" in status.message


class TestMetrics:
    """``/v1/metrics``: exporters get a 200 whose partial_success says the data points were dropped."""

    def test_sdk_metric_exporter_succeeds_and_is_told_why_nothing_is_stored(self, server: BackgroundServer) -> None:
        token = _token(server, "metrics")
        reader = InMemoryMetricReader()
        provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
        meter = provider.get_meter("genai")
        usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        usage.record(21, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o-mini"})
        usage.record(6, {"gen_ai.token.type": "output", "gen_ai.request.model": "gpt-4o-mini"})
        meter.create_histogram("gen_ai.client.operation.duration", unit="s").record(0.4)
        data = reader.get_metrics_data()
        provider.shutdown()
        exporter = OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics", headers={"Authorization": f"Bearer {token}"})
        assert exporter.export(data) == MetricExportResult.SUCCESS
        for encoding in ("protobuf", "json"):
            request = encode_metrics(data)
            body = (
                request.SerializeToString() if encoding == "protobuf" else json_format.MessageToJson(request).encode()
            )
            media = "application/x-protobuf" if encoding == "protobuf" else "application/json"
            response = _post(server, token, body, media, path="/v1/metrics")
            assert response.status_code == 200, response.content
            if encoding == "protobuf":
                parsed = ExportMetricsServiceResponse.FromString(response.content)
            else:
                parsed = json_format.Parse(response.content, ExportMetricsServiceResponse())
            assert parsed.partial_success.rejected_data_points == 3
            assert "/v1/traces" in parsed.partial_success.error_message
        assert _post(server, token, b"\xff\xff", path="/v1/metrics").status_code == 400


class TestLargeExports:
    """An export of hundreds of spans: every valid span stored once, the invalid one named."""

    def test_large_export(self, data_dir: Path) -> None:
        with BackgroundServer(serving_app(make_settings(data_dir)), free_port()) as running:
            token = _token(running, "large")
            spans = _spans(
                [(f"chat {i}", {**CHAT, "gen_ai.conversation.id": f"c{i}"}, i % 7 == 0) for i in range(300)]
                + [("chat no model", {"gen_ai.operation.name": "chat"}, False), ("GET /", {}, False)]
            )
            body = encode_spans(spans).SerializeToString()
            assert _partial(_post(running, token, body)) == (
                1,
                f"span {spans[300].get_span_context().span_id:016x}: "
                "no model (gen_ai.request.model, gen_ai.response.model, "
                "llm.model_name)",
            )
            stored = _inference(running, token, _event_id(spans[14]))
            assert (stored["status"], stored["tags"]["conversation_id"]) == ("error", "c14")
            models = httpx.get(f"{running.url}/v1/models", headers={"authorization": f"Bearer {token}"}).json()
            assert [model["inferences"] for model in models] == [300]
            storage = running.app.state.runtime.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


class TestContentViaLogEvents:
    """Prompts and responses sent as log events land on the inference of their span, in either order."""

    def test_official_instrumentation_with_event_only_content(
        self, server: BackgroundServer, fake_openai: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
        token = _token(server, "content-events")
        # 1. the SDK's own OTLP exporters, as an app runs them
        tracer_provider, logger_provider = _providers(server, token)
        recorder = _Recorder()
        tracer_provider.add_span_processor(SimpleSpanProcessor(recorder))
        # 2. the same instrumentation into memory, to send spans and logs in a chosen order
        memory_spans, memory_logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
        memory_tracer, memory_logger = TracerProvider(resource=RESOURCE), LoggerProvider(resource=RESOURCE)
        memory_tracer.add_span_processor(SimpleSpanProcessor(memory_spans))
        memory_logger.add_log_record_processor(SimpleLogRecordProcessor(memory_logs))
        questions = ["Capital of France?", "Capital of Italy?", "Capital of Spain?"]
        for index, (tracer, logger) in enumerate(
            [(tracer_provider, logger_provider), (memory_tracer, memory_logger), (memory_tracer, memory_logger)]
        ):
            instrumentor = OpenAIInstrumentor()
            instrumentor.instrument(tracer_provider=tracer, logger_provider=logger)
            try:
                client = openai.OpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": questions[index]},
                    ],
                )
            finally:
                instrumentor.uninstrument()
        tracer_provider.shutdown()
        logger_provider.shutdown()
        [exported] = recorder.spans
        log_first, span_first = memory_spans.get_finished_spans()

        def logs_of(span: ReadableSpan) -> bytes:
            mine = [
                data
                for data in memory_logs.get_finished_logs()
                if data.log_record.span_id == span.get_span_context().span_id
            ]
            assert [data.log_record.event_name for data in mine] == ["gen_ai.client.inference.operation.details"]
            return encode_logs(mine).SerializeToString()

        def spans_of(span: ReadableSpan) -> bytes:
            return encode_spans([span]).SerializeToString()

        assert _post(server, token, logs_of(log_first), path="/v1/logs").status_code == 200
        assert _partial(_post(server, token, spans_of(log_first))) == (0, "")
        assert _partial(_post(server, token, spans_of(span_first))) == (0, "")
        assert not _inference(server, token, _event_id(span_first))["prompt"]  # no content on the span itself
        for _ in range(2):  # a resent log changes nothing
            assert _post(server, token, logs_of(span_first), path="/v1/logs").status_code == 200

        for span, question in [(exported, questions[0]), (log_first, questions[1]), (span_first, questions[2])]:
            stored = _inference(server, token, _event_id(span))
            assert stored["prompt"] == f"system: Be brief.\nuser: {question}"
            assert stored["response"] == "Paris is the capital."
            assert (stored["input_tokens"], stored["output_tokens"], stored["status"]) == (21, 6, "ok")
        response = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {token}"})
        assert [model["inferences"] for model in response.json()] == [3]

    def test_older_per_message_events_are_gathered_per_span(self, server: BackgroundServer) -> None:
        token = _token(server, "content-legacy")
        [span] = _spans([("chat", CHAT, False)])
        memory_logs = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=RESOURCE)
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory_logs))
        logger = provider.get_logger("openai-v2")
        context = trace.set_span_in_context(trace.NonRecordingSpan(span.get_span_context()))
        for event_name, body in [
            ("gen_ai.system.message", {"content": "Be brief."}),
            ("gen_ai.user.message", {"content": "Capital of France?"}),
            (
                "gen_ai.choice",
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris."}},
            ),
        ]:
            logger.emit(event_name=event_name, body=body, context=context)
        logger.emit(event_name="gen_ai.user.message", body={"content": "orphan"})  # no span: rejected
        provider.shutdown()
        response = _post(
            server, token, encode_logs(memory_logs.get_finished_logs()).SerializeToString(), path="/v1/logs"
        )
        assert ExportLogsServiceResponse.FromString(response.content).partial_success.rejected_log_records == 1
        assert _partial(_post(server, token, encode_spans([span]).SerializeToString())) == (0, "")
        stored = _inference(server, token, _event_id(span))
        assert (stored["prompt"], stored["response"]) == ("system: Be brief.\nuser: Capital of France?", "Paris.")
