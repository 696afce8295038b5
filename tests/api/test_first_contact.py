"""What a person meets first: event times the server refuses, errors that say the fix, the stats API's
answer to a metric or model it does not know, ``/`` and ``/docs``. Real app, runner and chDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.decode import EventTimePolicy
from streams.pipeline import Pipeline
from streams.storage import Storage
from tests.conftest import Api, make_settings


def _post(api: Api, path: str, items: object, headers: dict[str, str]) -> tuple[int, object]:
    response = api.client.post(
        path, content=orjson.dumps(items), headers={**headers, "content-type": "application/json"}
    )
    return response.status_code, response.json()


def _ahead(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


class TestEventTime:
    """Event times ahead of the server's clock are refused; a time without a zone is UTC by default."""

    @pytest.mark.parametrize("path", ["/v1/inferences", "/v1/feedback"])
    def test_a_future_timestamp_is_a_422_naming_the_field_and_the_servers_time(self, api: Api, path: str) -> None:
        headers = api.key("future")
        item = {"model": "m"} if path == "/v1/inferences" else {"inference_id": "i", "kind": "thumbs", "value": 1}
        before = datetime.now(UTC).replace(microsecond=0)
        status, body = _post(api, path, [{**item, "timestamp": _ahead(1)}, {**item, "timestamp": _ahead(20)}], headers)
        assert status == 422
        (problem,) = body["detail"]  # type: ignore[index]
        assert problem["loc"] == ["body", 1, "timestamp"]
        assert problem["type"] == "timestamp_in_future"
        assert "20 min ahead of the server's clock" in problem["msg"]
        server_time = datetime.fromisoformat(problem["msg"].split("server's clock (")[1].split(")")[0])
        assert before <= server_time <= datetime.now(UTC)
        assert "at most 5 min in the future" in problem["msg"]

    def test_slow_path_too(self, api: Api) -> None:
        """A body the fast decoder passes to pydantic (a coercion) is judged by the same rule."""
        status, body = _post(
            api, "/v1/inferences", {"model": "m", "input_tokens": "3", "timestamp": _ahead(30)}, api.key("s")
        )
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", 0, "timestamp"]  # type: ignore[index]

    def test_a_time_without_a_zone_is_utc_and_says_so_when_it_is_ahead(self, api: Api) -> None:
        headers = api.key("naive")
        local = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="seconds")
        status, body = _post(api, "/v1/inferences", {"model": "m", "timestamp": local}, headers)
        assert status == 422
        assert "a time without a zone is read as UTC: add its offset" in body["detail"][0]["msg"]  # type: ignore[index]
        past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
        status, body = _post(
            api, "/v1/inferences", {"event_id": "n1", "model": "m", "timestamp": past.isoformat()}, headers
        )
        assert status == 202
        api.wait_written()
        stored = api.client.get("/v1/inferences/n1", headers=headers).json()
        assert datetime.fromisoformat(stored["timestamp"]) == past.replace(tzinfo=UTC)

    def test_a_configured_skew_and_refusing_times_without_a_zone(self, data_dir) -> None:  # type: ignore[no-untyped-def]
        settings = make_settings(data_dir, max_future_skew_seconds=3600, naive_timestamps="refuse")
        with TestClient(serving_app(settings)) as client:
            api = Api(client)
            headers = api.key("strict")
            assert _post(api, "/v1/inferences", {"model": "m", "timestamp": _ahead(30)}, headers)[0] == 202
            status, body = _post(api, "/v1/inferences", {"model": "m", "timestamp": "2026-01-01T10:00:00"}, headers)
            assert status == 422
            assert body["detail"][0]["type"] == "timezone_required"  # type: ignore[index]
            assert "2026-12-07T13:00:00Z" in body["detail"][0]["msg"]  # type: ignore[index]
            storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")

    def test_kafka_messages_with_a_future_time_become_dead_letters_with_the_reason(
        self, settings: Settings, storage: Storage
    ) -> None:
        """The worker's decode path (``Pipeline.accept_raw``, what a Kafka worker runs per message)."""
        pipeline = Pipeline(storage, settings)
        envelope = orjson.dumps(
            [
                {"project": "k", "model": "m", "event_id": "now"},
                {"project": "k", "model": "m", "event_id": "later", "timestamp": _ahead(60)},
            ]
        )
        decoded = pipeline.accept_raw("inference", envelope)
        assert [record.event_id for record in decoded.events] == ["now"]
        (letter,) = decoded.dead_letters
        assert letter.error.startswith("[1].timestamp: ")
        assert "ahead of the server's clock" in letter.error
        pipeline.sink.flush()
        row = storage.rows(f"SELECT error FROM {storage.database}.dead_letters WHERE project = 'k'")
        assert [r["error"] for r in row] == [letter.error]

    def test_an_otlp_span_from_the_future_is_a_rejected_span(self, api: Api) -> None:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("t")
        for minutes in (0, 60):  # one span now, one an hour ahead
            start = int((datetime.now(UTC) + timedelta(minutes=minutes)).timestamp() * 1e9)
            tracer.start_span("chat", attributes={"gen_ai.request.model": "m"}, start_time=start).end(start + 10**8)
        body = encode_spans(list(memory.get_finished_spans())).SerializeToString()
        headers = {**api.key("otlp-future"), "content-type": "application/x-protobuf"}
        response = api.client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == 200
        reply = ExportTraceServiceResponse.FromString(response.content)
        assert reply.partial_success.rejected_spans == 1
        assert "ahead of the server's clock" in reply.partial_success.error_message

    def test_the_policy_follows_the_settings(self) -> None:
        policy = EventTimePolicy.of(Settings(_env_file=None, max_future_skew_seconds=90, naive_timestamps="refuse"))  # type: ignore[call-arg]
        rules = policy.rules()
        assert rules.latest - rules.now == timedelta(seconds=90)
        assert not rules.naive_utc


class TestErrorsSayTheFix:
    def test_an_unknown_field_suggests_the_one_meant(self, api: Api) -> None:
        status, body = _post(api, "/v1/inferences", [{"model": "m", "latency": 812}], api.key("typo"))
        assert status == 422
        assert body["detail"] == [  # type: ignore[index]
            {
                "loc": ["body", 0, "latency"],
                "msg": "unknown field 'latency': did you mean 'latency_ms'?",
                "type": "extra_forbidden",
            }
        ]

    def test_every_problem_is_still_listed_beside_the_suggestion(self, api: Api) -> None:
        status, body = _post(api, "/v1/inferences", {"model": 5, "latency": 1, "status": "x"}, api.key("typo2"))
        assert status == 422
        assert {tuple(p["loc"]) for p in body["detail"]} == {  # type: ignore[index]
            ("body", 0, "model"),
            ("body", 0, "status"),
            ("body", 0, "latency"),
        }

    def test_a_date_that_is_not_iso_8601_gets_an_example(self, api: Api) -> None:
        status, body = _post(api, "/v1/inferences", {"model": "m", "timestamp": "12/07/2026 13:00"}, api.key("date"))
        assert status == 422
        message = body["detail"][0]["msg"]  # type: ignore[index]
        assert message.startswith("Input should be an ISO 8601 date-time such as 2026-12-07T13:00:00Z")
        assert "(invalid character in year)" in message

    def test_a_key_without_bearer_is_named_as_such(self, api: Api) -> None:
        token = api.key("bearer")["authorization"].removeprefix("Bearer ")
        status, body = _post(api, "/v1/inferences", {"model": "m"}, {"authorization": token})
        assert status == 401
        assert "is the 'Bearer ' before the key missing?" in body["detail"]  # type: ignore[index]
        assert token not in body["detail"]  # type: ignore[operator]
        status, body = _post(api, "/v1/inferences", {"model": "m"}, {})
        assert body["detail"] == "missing API key: send 'Authorization: Bearer <key>'"  # type: ignore[index]


class TestStatsQueries:
    """Asking for a metric or a model that does not exist is an error, not an empty list."""

    def test_unknown_metric_lists_the_familys_metrics(self, api: Api) -> None:
        response = api.client.get("/v1/stats/latency", params={"metric": "p95"}, headers=api.key("st"))
        assert response.status_code == 422
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["query", "metric"]
        assert problem["msg"].startswith(
            "'latency' has no metric 'p95'; choose one of: count, error_count, error_rate,"
        )
        assert "latency_p95_ms" in problem["msg"]

    def test_unknown_model_is_a_404_naming_it_and_a_known_one_an_empty_list(self, api: Api) -> None:
        headers = api.key("st2")
        missing = api.client.get("/v1/stats/latency", params={"model": "gpt-5-typo"}, headers=headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no model 'gpt-5-typo' in project 'st2': it sent no inferences"
        assert _post(api, "/v1/inferences", {"model": "known"}, headers)[0] == 202
        api.wait_written()
        known = api.client.get(
            "/v1/stats/latency", params={"model": "known", "metric": "latency_p95_ms"}, headers=headers
        )
        assert known.status_code == 200
        assert known.json() == []


class TestRootAndDocs:
    def test_root_sends_people_to_the_dashboard(self, api: Api) -> None:
        response = api.client.get("/", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui"

    def test_docs_load_swagger_ui_from_this_server_under_the_strict_policy(self, api: Api) -> None:
        page = api.client.get("/docs")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script
        for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/docs/static/start.js"):
            assert f'"{asset}"' in page.text
            fetched = api.client.get(asset)
            assert fetched.status_code == 200, asset
        assert api.client.get("/docs/static/nope.js").status_code == 404
