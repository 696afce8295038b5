"""OTLP/HTTP ingest with the real OpenTelemetry SDK, its OTLP exporter and real GenAI instrumentations.

The app runs under uvicorn on 127.0.0.1 (embedded pipeline, chDB); the ``openai`` client talks to a
small OpenAI-compatible server the test runs on 127.0.0.1; the instrumentations and the SDK exporter
send what they send, and the test reads the stored events back through the API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from api import create_app
from loopwatch._server import BackgroundServer, free_port
from tests.conftest import make_settings

RESOURCE = Resource.create({"service.name": "support-bot", "service.version": "2.1.0",
                            "deployment.environment.name": "prod"})  # fmt: skip


# --- an OpenAI-compatible server on loopback ---------------------------------------------------------


class _FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: a fixed answer with usage; model ``broken`` gets a 400."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if request["model"] == "broken":
            self._send(400, {"error": {"message": "bad model", "type": "invalid_request_error", "code": "bad"}})
            return
        self._send(200, {
            "id": "chatcmpl-42", "object": "chat.completion", "created": 1_780_000_000, "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27,
                      "prompt_tokens_details": {"cached_tokens": 5}},
        })  # fmt: skip

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
    with BackgroundServer(create_app(make_settings(data_dir)), free_port()) as running:
        storage = running.app.state.services.storage
        yield running
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _token(server: BackgroundServer, project: str) -> str:
    return str(server.app.state.services.keys.create(project, "otel").token)


def _providers(server: BackgroundServer, token: str) -> tuple[TracerProvider, LoggerProvider]:
    """The SDK as an app configures it: OTLP/HTTP protobuf exporters with the key in the headers."""
    headers = {"Authorization": f"Bearer {token}"}
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers=headers))
    )
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs", headers=headers))
    )
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
        attributes={"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": score,
                    "gen_ai.evaluation.score.label": label, "gen_ai.evaluation.explanation": "grounded in the context"},
    )  # fmt: skip


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
        tracer_provider, logger_provider = _providers(server, token)
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
