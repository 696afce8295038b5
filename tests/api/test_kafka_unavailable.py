"""Kafka mode: a broker that does not acknowledge makes ingest a retryable 503, not a 500 or a hang."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.settings import Settings
from tests.conftest import Api
from tests.kafka_fixtures import broker, stop_broker

ACK_TIMEOUT = 3.0


def test_ingest_is_503_with_retry_after_once_the_broker_is_gone(settings: Settings) -> None:
    with broker() as address:
        kafka = settings.model_copy(
            update={
                "kafka_bootstrap": address,
                "topic_prefix": "gone",
                "ack_timeout_seconds": ACK_TIMEOUT,
                "stop_grace_seconds": 2,
            }
        )
        with TestClient(serving_app(kafka)) as client:
            api = Api(client)
            headers = api.key("shop")
            event = {"model": "chat", "latency_ms": 12.0}
            assert client.post("/v1/inferences", json=[event], headers=headers).status_code == 202
            stop_broker(address)
            response = client.post("/v1/inferences", json=[event], headers=headers)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            # the ack timeout answered, not the producer's 40 s default (no timing: the message says which)
            assert "Kafka did not acknowledge the events within 3 s" in response.json()["detail"]
            assert "resend" in response.json()["detail"]
            otlp = client.post("/v1/traces", json=_one_genai_span(), headers=headers)
            assert otlp.status_code == 503, otlp.text  # an OTLP exporter retries 503 (UNAVAILABLE)
            assert otlp.headers["retry-after"] == "1"


def _one_genai_span() -> dict[str, object]:
    now = time.time_ns()
    attributes = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
    ]
    span = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": str(now - 200_000_000),
        "endTimeUnixNano": str(now),
        "attributes": attributes,
    }
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
