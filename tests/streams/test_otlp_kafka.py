"""OTLP ingest in distributed mode: the API converts spans and evaluations and produces the usual envelopes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopwatch.process import serving_app
from schemas.settings import Settings
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def test_spans_and_evaluations_arrive_through_kafka(kafka_settings: Settings) -> None:
    spans_memory, logs_memory = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans_memory))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs_memory))
    tracer = tracer_provider.get_tracer("app")
    for i in range(300):
        with tracer.start_as_current_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10 + i,
                "gen_ai.usage.output_tokens": 5,
            },
        ):
            pass
    with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):  # no model: rejected
        pass
    first = spans_memory.get_finished_spans()[0]
    context = trace.set_span_in_context(trace.NonRecordingSpan(first.get_span_context()))
    logger_provider.get_logger("eval").emit(
        event_name="gen_ai.evaluation.result",
        context=context,
        attributes={"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.25},
    )
    event_id = f"{first.context.trace_id:032x}{first.context.span_id:016x}"

    with TestClient(serving_app(kafka_settings, with_worker=True)) as client:
        services = client.app.state.runtime
        headers = {
            "authorization": f"Bearer {services.keys.create('otlp-kafka').token}",
            "content-type": "application/x-protobuf",
        }
        logs = client.post(
            "/v1/logs", content=encode_logs(logs_memory.get_finished_logs()).SerializeToString(), headers=headers
        )
        assert logs.status_code == 200, logs.text
        body = encode_spans(list(spans_memory.get_finished_spans())).SerializeToString()
        response = client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1

        def stored() -> bool:
            models = client.get("/v1/models", headers=headers).json()
            return bool(models) and models[0]["inferences"] == 300 and models[0]["feedback"] == 1

        wait_until(stored, "the events via Kafka", timeout=120, interval=0.2)
        detail = client.get(f"/v1/inferences/{event_id}", headers=headers).json()
        assert (detail["model"], detail["input_tokens"]) == ("gpt-4o-mini", 10)
        assert detail["feedback"][0]["value"] == 0.25
        storage = services.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
