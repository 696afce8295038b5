"""Planted personal data never reaches storage, logs or dead letters in clear, whichever way it comes in:
JSON ingest, OTLP traces and logs (protobuf and JSON), raw envelopes as the Kafka worker decodes them.
Real app, real embedded pipeline, real chDB; the tables are read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from loopwatch.process import serving_app
from tests.conftest import Api, make_settings
from tests.privacy_samples import PLANTED, clear_values, every_entity_text, planted_text

KEY_A = "pseudonym-key-a-0123456789"
KEY_B = "pseudonym-key-b-0123456789"


def _post(api: Api, path: str, body: object, headers: dict[str, str]) -> int:
    response = api.client.post(
        path, content=orjson.dumps(body), headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
    return response.status_code


def _rows(api: Api, sql: str, **params: object) -> list[dict]:
    storage = api.services.storage
    return storage.rows(sql.replace("{db}", storage.database), params)


def _assert_clean(text: object) -> None:
    for value in clear_values():
        assert value not in str(text), value


class TestJsonIngest:
    """``POST /v1/inferences`` and ``/v1/feedback`` under the default policy (mask)."""

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(prompt=planted_text(), response=planted_text(), correction=planted_text())
    def test_planted_values_are_masked_before_storage_and_logs(
        self, api: Api, prompt: tuple, response: tuple, correction: tuple
    ) -> None:
        headers = api.key("shop")
        event_id = f"e-{abs(hash((prompt[0], response[0], correction[0])))}"
        with capture_logs() as logs:
            _post(
                api,
                "/v1/inferences",
                {"event_id": event_id, "model": "m", "prompt": prompt[0], "response": response[0]},
                headers,
            )
            _post(
                api,
                "/v1/feedback",
                {"inference_id": event_id, "kind": "correction", "value": "fixed", "text": correction[0]},
                headers,
            )
            api.wait_written()
        stored = _rows(
            api, "SELECT prompt, response FROM {db}.inferences FINAL WHERE event_id = {id:String}", id=event_id
        )
        texts = _rows(api, "SELECT text FROM {db}.feedback FINAL WHERE inference_id = {id:String}", id=event_id)
        assert len(stored) == 1 and len(texts) == 1
        for (_, entities), value in (
            (prompt, stored[0]["prompt"]),
            (response, stored[0]["response"]),
            (correction, texts[0]["text"]),
        ):
            _assert_clean(value)
            for kind, _ in entities:
                assert f"<{kind}>" in value
        _assert_clean(repr(logs))

    def test_dead_letters_are_redacted(self, api: Api) -> None:
        """An item that fails validation is kept as a dead letter: its payload is redacted too."""
        pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
        bad = [{"project": "shop", "model": "m", "latency_ms": -1, "prompt": every_entity_text()}]
        with capture_logs() as logs:
            decoded = pipeline.accept_raw("inference", orjson.dumps(bad))
            api.wait_written()
        assert len(decoded.dead_letters) == 1
        _assert_clean(decoded.dead_letters[0].payload)
        letters = _rows(api, "SELECT payload FROM {db}.dead_letters WHERE project = 'shop'")
        assert letters and "<EMAIL>" in letters[0]["payload"]
        _assert_clean(letters)
        _assert_clean(repr(logs))

    def test_raw_envelope_as_the_kafka_worker_decodes_it(self, api: Api) -> None:
        pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
        envelope = [{"project": "sdk", "model": "m", "event_id": "k-1", "prompt": every_entity_text()}]
        pipeline.accept_raw("inference", orjson.dumps(envelope))
        api.wait_written()
        (row,) = _rows(api, "SELECT prompt FROM {db}.inferences FINAL WHERE event_id = 'k-1'")
        _assert_clean(row["prompt"])
        assert all(f"<{kind}>" in row["prompt"] for kind in PLANTED)


RESOURCE = Resource.create({"service.name": "privacy-test"})


def _trace_body(prompt: str, response: str, encoding: str) -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": prompt,
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": response,
    }
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o-mini", attributes=attributes):
        pass
    message = encode_spans(list(memory.get_finished_spans()))
    return message.SerializeToString() if encoding == "protobuf" else json_format.MessageToJson(message).encode()


CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}


class TestOtlp:
    """OTLP traces (protobuf and JSON) map into the same events and are redacted the same way."""

    @pytest.mark.parametrize("encoding", ["protobuf", "json"])
    def test_span_content_is_masked(self, api: Api, encoding: str) -> None:
        headers = api.key(f"otlp-{encoding}")
        text = every_entity_text()
        with capture_logs() as logs:
            response = api.client.post(
                "/v1/traces",
                content=_trace_body(text, "reply to " + text, encoding),
                headers={**headers, "content-type": CONTENT_TYPES[encoding]},
            )
            assert response.status_code == 200, response.text
            api.wait_written()
        (row,) = _rows(
            api, "SELECT prompt, response FROM {db}.inferences FINAL WHERE project = {p:String}", p=f"otlp-{encoding}"
        )
        for value in (row["prompt"], row["response"]):
            _assert_clean(value)
            assert all(f"<{kind}>" in value for kind in PLANTED)
        _assert_clean(repr(logs))

    def test_log_event_texts_are_masked_before_they_are_kept(self, api: Api) -> None:
        """Content captured via log events waits in ``otlp_texts`` for its span: redacted before it is kept."""
        headers = api.key("otlp-logs")
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=RESOURCE)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        tracer_provider = TracerProvider(resource=RESOURCE)
        with tracer_provider.get_tracer("app").start_as_current_span("chat"):
            provider.get_logger("app").emit(
                event_name="gen_ai.user.message",
                body={"content": every_entity_text()},
                attributes={"gen_ai.system": "openai"},
            )
        body = encode_logs(list(exporter.get_finished_logs())).SerializeToString()
        response = api.client.post(
            "/v1/logs", content=body, headers={**headers, "content-type": CONTENT_TYPES["protobuf"]}
        )
        assert response.status_code == 200, response.text
        kept = _rows(api, "SELECT prompt, response FROM {db}.otlp_texts FINAL WHERE project = 'otlp-logs'")
        assert kept, "the log event's text was kept for its span"
        _assert_clean(kept)
        assert "<EMAIL>" in str(kept)


@pytest.fixture
def pseudonymizing(data_dir: Path) -> Iterator[tuple[Api, Api]]:
    """Two servers that pseudonymize, with different keys."""
    apps = [
        TestClient(serving_app(make_settings(data_dir, redaction_mode="pseudonymize", redaction_key=key)))
        for key in (KEY_A, KEY_B)
    ]
    with apps[0] as first, apps[1] as second:
        yield Api(first), Api(second)
    for client in apps:
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


class TestPseudonyms:
    """The same value gives the same token under one key (counts and joins still work), another under another key."""

    def test_stable_per_key_and_different_across_keys(self, pseudonymizing: tuple[Api, Api]) -> None:
        tokens = []
        for api in pseudonymizing:
            headers = api.key("p")
            events = [
                {"event_id": f"s-{i}", "model": "m", "prompt": f"mail ana.lopez+shop@example.co.uk ({i})"}
                for i in range(2)
            ]
            _post(api, "/v1/inferences", events, headers)
            api.wait_written()
            rows = _rows(api, "SELECT prompt FROM {db}.inferences FINAL WHERE project = 'p' ORDER BY event_id")
            found = {row["prompt"].split()[1] for row in rows}
            assert len(found) == 1, found  # the same address, the same token
            (token,) = found
            assert token.startswith("<EMAIL:") and token.endswith(">") and len(token) == len("<EMAIL:>") + 12
            tokens.append(token)
        assert tokens[0] != tokens[1]


class TestPolicyApi:
    """A project changes its policy through ``/v1/privacy/policy``; the next events follow it."""

    def _send(self, api: Api, headers: dict[str, str], event_id: str) -> dict:
        _post(
            api,
            "/v1/inferences",
            {"event_id": event_id, "model": "m", "prompt": "write to ana@example.com about ORD-123456"},
            headers,
        )
        api.wait_written()
        (row,) = _rows(api, "SELECT prompt FROM {db}.inferences FINAL WHERE event_id = {id:String}", id=event_id)
        return row

    def test_modes_and_custom_patterns(self, api: Api) -> None:
        headers = api.key("pol")
        assert api.client.get("/v1/privacy/policy", headers=headers).json()["own"] is False
        assert self._send(api, headers, "pol-default")["prompt"] == "write to <EMAIL> about ORD-123456"
        custom = {"mode": "mask", "custom": [{"name": "ORDER_ID", "regex": r"ORD-\d{6}"}]}
        assert api.client.put("/v1/privacy/policy", json=custom, headers=headers).status_code == 200
        assert self._send(api, headers, "pol-custom")["prompt"] == "write to <EMAIL> about <ORDER_ID>"
        assert api.client.put("/v1/privacy/policy", json={"mode": "drop"}, headers=headers).status_code == 200
        assert not self._send(api, headers, "pol-drop")["prompt"]  # dropped (stored as the empty string)
        assert api.client.put("/v1/privacy/policy", json={"mode": "off"}, headers=headers).status_code == 200
        assert self._send(api, headers, "pol-off")["prompt"] == "write to ana@example.com about ORD-123456"
        assert api.client.get("/v1/privacy/policy", headers=headers).json()["policy"]["mode"] == "off"
        assert api.client.delete("/v1/privacy/policy", headers=headers).json()["own"] is False
        assert self._send(api, headers, "pol-back")["prompt"] == "write to <EMAIL> about ORD-123456"

    def test_bad_policies_are_422_with_the_reason(self, api: Api) -> None:
        headers = api.key("bad")
        response = api.client.put("/v1/privacy/policy", json={"mode": "pseudonymize"}, headers=headers)
        assert response.status_code == 422 and "LOOPWATCH_REDACTION_KEY" in response.text
        response = api.client.put(
            "/v1/privacy/policy", json={"custom": [{"name": "X", "regex": "(unclosed"}]}, headers=headers
        )
        assert response.status_code == 422 and "not a valid regular expression" in response.text
        response = api.client.put("/v1/privacy/policy", json={"detectors": ["ssn"]}, headers=headers)
        assert response.status_code == 422


class TestFieldsAndDetect:
    """Tags and features are scanned when the policy names them; ``detect`` changes nothing and logs counts."""

    def test_tags_and_features(self, api: Api) -> None:
        headers = api.key("fields")
        policy = {"mode": "mask", "fields": ["prompt", "tags", "features"]}
        assert api.client.put("/v1/privacy/policy", json=policy, headers=headers).status_code == 200
        event = {
            "event_id": "f-1",
            "model": "m",
            "tags": {"user": "ana@example.com", "route": "/chat"},
            "features": {"ip": "192.168.10.42", "age": 31},
        }
        _post(api, "/v1/inferences", event, headers)
        api.wait_written()
        (row,) = _rows(api, "SELECT tags, features FROM {db}.inferences FINAL WHERE event_id = 'f-1'")
        assert "ana@example.com" not in str(row) and "192.168.10.42" not in str(row)
        assert "<EMAIL>" in str(row["tags"]) and "/chat" in str(row["tags"])
        assert "<IP>" in str(row["features"])

    def test_detect_mode_logs_counts_only(self, api: Api) -> None:
        headers = api.key("detect")
        assert api.client.put("/v1/privacy/policy", json={"mode": "detect"}, headers=headers).status_code == 200
        with capture_logs() as logs:
            _post(api, "/v1/inferences", {"event_id": "d-1", "model": "m", "prompt": "mail ana@example.com"}, headers)
            api.wait_written()
        (row,) = _rows(api, "SELECT prompt FROM {db}.inferences FINAL WHERE event_id = 'd-1'")
        assert row["prompt"] == "mail ana@example.com"
        found = [entry for entry in logs if entry["event"] == "pii_redacted"]
        assert found == [
            {"event": "pii_redacted", "project": "detect", "mode": "detect", "found": {"EMAIL": 1}, "log_level": "info"}
        ]
        assert "ana@example.com" not in repr(logs)
