"""The ``privacy`` statistics family: what redaction finds at ingest is counted with the stored event,
summed per window, served by ``/v1/stats/privacy`` and judged by monitors through the normal alert path.
Real app, real embedded pipeline, real chDB, a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from detectors import pii_counts
from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.privacy.seal import REDACTED_HEADER, seal
from tests.conftest import Api, make_settings

SECRET = "whsec-0123456789abcdef"  # noqa: S105 - a test signing secret
START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
OTLP_RESOURCE = Resource.create({"service.name": "privacy-stats-test"})
LEAK_MONITOR = {
    "name": "PII in responses",
    "family": "privacy",
    "metric": "share_with_pii",
    "dimension": "response",
    "condition": {"type": "threshold", "operator": "gt", "value": 0.005},
    "cooldown_seconds": 0,
}


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
        window_seconds=60,
        allowed_lateness_seconds=0,
        reference_min_rows=10_000,
        quality_refresh_seconds=0.01,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _send(api: Api, headers: dict[str, str], model: str, responses: list[str], version: str = "") -> None:
    events = [
        {
            "event_id": f"{model}-{i}",
            "model": model,
            **({"model_version": version} if version else {}),
            "prompt": "Where is my order?",
            "response": text,
            "latency_ms": 100.0,
            "timestamp": (START + timedelta(seconds=i)).isoformat(),
        }
        for i, text in enumerate(responses)
    ]
    response = api.client.post(
        "/v1/inferences", content=orjson.dumps(events), headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


def _close_all(api: Api) -> None:
    api.wait_written()
    pipeline = api.services.runner.pipeline  # type: ignore[union-attr]

    async def close() -> None:
        await asyncio.to_thread(pipeline.close_windows, force_all=True)

    api.client.portal.call(close)  # type: ignore[union-attr]


def _stats(api: Api, headers: dict[str, str], model: str, metric: str, **params: str) -> dict[str, float]:
    response = api.client.get("/v1/stats/privacy", params={"model": model, "metric": metric, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {row["dimension"]: row["value"] for row in response.json()}


class TestCounts:
    """``detectors.pii``: one definition of a share, whose denominator is the events whose field was scanned."""

    def test_share_per_field_and_kind(self) -> None:
        events = [
            {"prompt": 0, "response": 2, "response.EMAIL": 1, "response.PHONE": 1},
            {"prompt": 1, "prompt.EMAIL": 1, "response": 0},
            {"prompt": 0, "response": 3, "response.EMAIL": 3},
            {},  # redaction off: in no denominator
        ]
        found = {count.dimension: count for count in pii_counts(events)}
        assert sorted(found) == ["prompt", "prompt.EMAIL", "response", "response.EMAIL", "response.PHONE"]
        assert (found["response"].scanned, found["response"].with_entities, found["response"].entities) == (3, 2, 5)
        assert found["response.EMAIL"].share == pytest.approx(2 / 3)
        assert found["response.PHONE"].share == pytest.approx(1 / 3)
        assert found["prompt.EMAIL"].entities == 1

    def test_nothing_scanned_is_no_statistics(self) -> None:
        assert pii_counts([{}, {}]) == []


class TestPrivacyFamily:
    """Ingest → stored counts → window rows → API, per model and version; a leak fires its monitor."""

    def test_a_model_leaking_emails_fires_and_a_clean_one_does_not(self, api: Api) -> None:
        headers = api.key("shop")
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {**LEAK_MONITOR, "channels": [{"type": "webhook", "url": hook.url, "secret": SECRET}]}
            created = api.client.post("/v1/monitors", json=monitor, headers=headers)
            assert created.status_code == 201, created.text
            leaky = ["Sure, done." for _ in range(18)] + [
                "Contact ana.silva@example.com for a refund.",
                "Mail bob@example.org or call +1 415 555 2671.",
            ]
            _send(api, headers, "leaky", leaky, version="v2")
            _send(api, headers, "clean", ["Sure, done."] * 20)
            _close_all(api)
            (request,) = hook.wait_for(1, timeout=20)
        assert request.verified
        assert (request.json["model"], request.json["metric"]) == ("leaky", "share_with_pii")
        assert request.json["value"] == pytest.approx(0.1)
        # the clean model's window was judged too (its row is there, at 0) and raised nothing
        assert _stats(api, headers, "clean", "share_with_pii") == {"prompt": 0.0, "response": 0.0}
        alerts = api.client.get("/v1/alerts", headers=headers).json()
        assert [(a["model"], a["metric"]) for a in alerts] == [("leaky", "share_with_pii")]

        shares = _stats(api, headers, "leaky", "share_with_pii")
        assert shares["response"] == pytest.approx(2 / 20)
        assert shares["response.EMAIL"] == pytest.approx(2 / 20)
        assert shares["response.PHONE"] == pytest.approx(1 / 20)
        assert _stats(api, headers, "leaky", "entity_count") == {
            "prompt": 0.0,
            "response": 3.0,
            "response.EMAIL": 2.0,
            "response.PHONE": 1.0,
        }
        assert _stats(api, headers, "leaky", "scanned_events", dimension="response") == {"response": 20.0}
        per_version = _stats(api, headers, "leaky", "share_with_pii", model_version="v2")
        assert per_version["response.EMAIL"] == pytest.approx(0.1)

    def test_redaction_off_has_no_statistics(self, api: Api) -> None:
        admin = {"authorization": f"Bearer {api.services.keys.create('quiet', 'admin', scope='admin').token}"}
        assert api.client.put("/v1/privacy/policy", json={"mode": "off"}, headers=admin).status_code == 200
        headers = api.key("quiet")
        _send(api, headers, "bot", ["Mail ana.silva@example.com"] * 5)
        _close_all(api)
        assert _stats(api, headers, "bot", "share_with_pii") == {}
        latency = api.client.get("/v1/stats/latency", params={"model": "bot", "metric": "count"}, headers=headers)
        assert [row["value"] for row in latency.json()] == [5.0]  # the window was closed: no privacy rows, not zeros

    def test_a_sender_cannot_plant_counts(self, api: Api) -> None:
        headers = api.key("shop")
        event = {"event_id": "forged", "model": "m", "response": "fine", "pii": {"response": 9}}
        response = api.client.post("/v1/inferences", json=event, headers=headers)
        assert response.status_code == 422
        assert "pii" in response.text


class TestMonitorSchema:
    """A privacy monitor's dimension is a field or a field and a kind, refused precisely otherwise."""

    @pytest.mark.parametrize("dimension", ["response", "prompt.EMAIL", "tags.ORDER_ID", "", "*"])
    def test_accepted(self, api: Api, dimension: str) -> None:
        body: dict[str, Any] = {**LEAK_MONITOR, "dimension": dimension}
        assert api.client.post("/v1/monitors", json=body, headers=api.key("shop")).status_code == 201

    @pytest.mark.parametrize("dimension", ["answer", "response.email", "response."])
    def test_refused(self, api: Api, dimension: str) -> None:
        body: dict[str, Any] = {**LEAK_MONITOR, "dimension": dimension}
        response = api.client.post("/v1/monitors", json=body, headers=api.key("shop"))
        assert response.status_code == 422
        assert "field and a kind" in response.text


class TestSecondScan:
    """A worker scanning an API envelope again (no ``LOOPWATCH_ENVELOPE_KEY``) finds placeholders, not
    entities: the API's counts are kept, and an SDK envelope is still counted by what it holds."""

    def test_counts_survive_a_second_scan(self, api: Api) -> None:
        pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
        from_api = {
            "event_id": "api-1",
            "project": "shop",
            "model": "m",
            "response": "Mail <EMAIL>",
            "pii": {"prompt": 0, "response": 1, "response.EMAIL": 1},
        }
        from_sdk = {"event_id": "sdk-1", "project": "shop", "model": "m", "response": "Mail bob@example.org"}
        decoded = pipeline.accept_raw("inference", orjson.dumps([from_api, from_sdk]))
        assert not decoded.dead_letters
        api.wait_written()
        storage = api.services.storage
        rows = storage.rows(
            f"SELECT event_id, response, pii FROM {storage.database}.inferences FINAL ORDER BY event_id"
        )
        assert [(r["event_id"], r["response"], dict(r["pii"])) for r in rows] == [
            ("api-1", "Mail <EMAIL>", {"prompt": 0, "response": 1, "response.EMAIL": 1}),
            ("sdk-1", "Mail <EMAIL>", {"prompt": 0, "response": 1, "response.EMAIL": 1}),
        ]


def _span_and_log(prompt: str) -> tuple[bytes, bytes]:
    """An OTLP span of a chat call without its content, and the log event that carries its prompt
    (content captured "via events"): the same trace and span."""
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider, logger_provider = TracerProvider(resource=OTLP_RESOURCE), LoggerProvider(resource=OTLP_RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "otlp-model"}
    with tracer_provider.get_tracer("app").start_as_current_span("chat otlp-model", attributes=attributes):
        logger_provider.get_logger("app").emit(
            event_name="gen_ai.user.message", body={"content": prompt}, attributes={"gen_ai.system": "openai"}
        )
    return (
        encode_spans(list(spans.get_finished_spans())).SerializeToString(),
        encode_logs(list(logs.get_finished_logs())).SerializeToString(),
    )


class TestOtlpTexts:
    """A prompt that came as an OTLP log event counts in its call's statistics, before or after its span."""

    @pytest.mark.parametrize("log_first", [False, True], ids=["log-after-span", "log-before-span"])
    def test_log_texts_are_counted_with_their_call(self, api: Api, log_first: bool) -> None:
        headers = {**api.key("otlp"), "content-type": "application/x-protobuf"}
        span, log = _span_and_log("Reach me at ana.silva@example.com")
        for path, body in [("/v1/logs", log), ("/v1/traces", span)][:: 1 if log_first else -1]:
            assert api.client.post(path, content=body, headers=headers).status_code == 200
            api.wait_written()
        storage = api.services.storage
        (row,) = storage.rows(f"SELECT prompt, pii FROM {storage.database}.inferences FINAL WHERE project = 'otlp'")
        assert row["prompt"] == "Reach me at <EMAIL>"
        assert dict(row["pii"])["prompt.EMAIL"] == 1
        assert dict(row["pii"])["prompt"] == 1
        _close_all(api)
        shares = _stats(api, headers, "otlp-model", "share_with_pii")
        assert shares["prompt"] == 1.0
        assert shares["prompt.EMAIL"] == 1.0


def _send_feedback(api: Api, headers: dict[str, str], feedback: list[dict[str, Any]]) -> None:
    response = api.client.post("/v1/feedback", json=feedback, headers=headers)
    assert response.status_code == 202, response.text
    api.wait_written()


def _stored_feedback(api: Api, project: str) -> dict[str, tuple[str, dict[str, int]]]:
    storage = api.services.storage
    rows = storage.rows(
        f"SELECT feedback_id, text, pii FROM {storage.database}.feedback FINAL WHERE project = {{project:String}}",
        {"project": project},
    )
    return {row["feedback_id"]: (row["text"], dict(row["pii"])) for row in rows}


CORRECTIONS = [
    {"feedback_id": "c-1", "inference_id": "bot-0", "kind": "correction", "text": "Write to ana.silva@example.com"},
    {"feedback_id": "c-2", "inference_id": "bot-1", "kind": "correction", "text": "It ships on Monday."},
    {"feedback_id": "n-1", "inference_id": "bot-2", "kind": "comment", "text": "Call me on +1 415 555 2671"},
    {"feedback_id": "t-1", "inference_id": "bot-3", "kind": "thumbs", "value": True},
]


class TestFeedbackTexts:
    """A correction's or a comment's text is counted under its kind (``correction``, ``comment``) in the
    window of the call it is about: at the window's close, or, arriving after it, by the late-feedback
    refresh that recomputes quality; a monitor on it fires through the normal alert path."""

    @pytest.mark.parametrize("late", [False, True], ids=["before-close", "after-close"])
    def test_corrections_are_counted_in_their_calls_window(self, api: Api, late: bool) -> None:
        headers = api.key("shop")
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {
                **LEAK_MONITOR,
                "name": "PII in corrections",
                "dimension": "correction",
                "condition": {"type": "threshold", "operator": "gt", "value": 0.0},
                "channels": [{"type": "webhook", "url": hook.url, "secret": SECRET}],
            }
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
            _send(api, headers, "bot", ["Sure, done."] * 4, version="v1")
            if late:
                _close_all(api)
                # the window closed without feedback: its privacy rows are the calls' fields only
                assert sorted(_stats(api, headers, "bot", "share_with_pii")) == ["prompt", "response"]
                _send_feedback(api, headers, CORRECTIONS)
                api.client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]
            else:
                _send_feedback(api, headers, CORRECTIONS)
                _close_all(api)
            (request,) = hook.wait_for(1, timeout=20)
        assert request.verified
        assert (request.json["model"], request.json["metric"], request.json["dimension"]) == (
            "bot",
            "share_with_pii",
            "correction",
        )
        assert request.json["value"] == pytest.approx(0.5)

        stored = _stored_feedback(api, "shop")
        assert stored["c-1"] == ("Write to <EMAIL>", {"correction": 1, "correction.EMAIL": 1})
        assert stored["c-2"] == ("It ships on Monday.", {"correction": 0})
        assert stored["n-1"] == ("Call me on <PHONE>", {"comment": 1, "comment.PHONE": 1})
        assert stored["t-1"] == ("", {})

        shares = _stats(api, headers, "bot", "share_with_pii")
        assert shares == {
            "prompt": 0.0,
            "response": 0.0,
            "correction": pytest.approx(0.5),
            "correction.EMAIL": pytest.approx(0.5),
            "comment": 1.0,
            "comment.PHONE": 1.0,
        }
        assert _stats(api, headers, "bot", "scanned_events", dimension="correction") == {"correction": 2.0}
        assert _stats(api, headers, "bot", "entity_count", dimension="correction.EMAIL") == {"correction.EMAIL": 1.0}
        per_version = _stats(api, headers, "bot", "share_with_pii", model_version="v1", dimension="correction")
        assert per_version == {"correction": pytest.approx(0.5)}

    def test_a_late_correction_alone_is_counted(self, api: Api) -> None:
        """No thumbs, rating, score or label: the window's quality stays empty, its privacy rows do not."""
        headers = api.key("shop")
        _send(api, headers, "bot", ["Sure, done."] * 2)
        _close_all(api)
        _send_feedback(api, headers, [CORRECTIONS[0]])
        api.client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]
        assert _stats(api, headers, "bot", "entity_count", dimension="correction.EMAIL") == {"correction.EMAIL": 1.0}
        quality = api.client.get("/v1/stats/quality", params={"model": "bot"}, headers=headers)
        assert quality.json() == []

    def test_a_sender_cannot_plant_counts(self, api: Api) -> None:
        forged = {"inference_id": "i-1", "kind": "correction", "text": "fine", "pii": {"correction": 9}}
        response = api.client.post("/v1/feedback", json=forged, headers=api.key("shop"))
        assert response.status_code == 422
        assert "pii" in response.text

    def test_redaction_off_counts_nothing(self, api: Api) -> None:
        admin = {"authorization": f"Bearer {api.services.keys.create('quiet', 'admin', scope='admin').token}"}
        assert api.client.put("/v1/privacy/policy", json={"mode": "off"}, headers=admin).status_code == 200
        headers = api.key("quiet")
        _send(api, headers, "bot", ["Sure."] * 2)
        _send_feedback(api, headers, [{**CORRECTIONS[0], "feedback_id": "q-1"}])
        _close_all(api)
        assert _stored_feedback(api, "quiet") == {"q-1": ("Write to ana.silva@example.com", {})}
        assert _stats(api, headers, "bot", "share_with_pii") == {}


class TestSealedFeedback:
    """A feedback envelope the API redacted and sealed keeps its counts in the worker (not scanned again);
    one without a valid mark is scanned and keeps the higher counts (a second scan sees placeholders)."""

    def test_sealed_envelope_keeps_its_counts(self, settings: Settings) -> None:
        key = "envelope-key-0123456789abcdef"
        with TestClient(serving_app(settings.model_copy(update={"envelope_key": SecretStr(key)}))) as client:
            api = Api(client)
            pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
            counted = {"correction": 1, "correction.EMAIL": 1}
            item = {"feedback_id": "s-1", "project": "shop", "inference_id": "i", "kind": "correction"}
            sealed_body = orjson.dumps([{**item, "text": "Write to <EMAIL>", "pii": counted}])
            decoded = pipeline.accept_raw("feedback", sealed_body, [(REDACTED_HEADER, seal(key.encode(), sealed_body))])
            assert not decoded.dead_letters
            rescanned = orjson.dumps([{**item, "feedback_id": "s-2", "text": "Write to <EMAIL>", "pii": counted}])
            sdk = orjson.dumps([{**item, "feedback_id": "s-3", "text": "Write to bob@example.org"}])
            for body in (rescanned, sdk):
                assert not pipeline.accept_raw("feedback", body, [(REDACTED_HEADER, b"forged")]).dead_letters
            api.wait_written()
            assert _stored_feedback(api, "shop") == {
                "s-1": ("Write to <EMAIL>", counted),
                "s-2": ("Write to <EMAIL>", counted),
                "s-3": ("Write to <EMAIL>", counted),
            }
            storage = api.services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _send_routes(api: Api, headers: dict[str, str], model: str, events: list[tuple[str, str, int]]) -> None:
    """(route tag, response, seconds after START) per call."""
    body = [
        {
            "event_id": f"{model}-{i}",
            "model": model,
            "response": text,
            "tags": {"route": route},
            "timestamp": (START + timedelta(seconds=offset)).isoformat(),
        }
        for i, (route, text, offset) in enumerate(events)
    ]
    assert api.client.post("/v1/inferences", json=body, headers=headers).status_code == 202


LEAK = "Write to ana.silva@example.com"


class TestDerivedMonitors:
    """Privacy monitors per tag value (``group_by``) and over a rolling range (``window``), from the calls'
    stored counts, through the normal alert path."""

    def test_group_by_route_names_the_leaking_route_only(self, api: Api) -> None:
        headers = api.key("shop")
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {
                **LEAK_MONITOR,
                "dimension": "response.EMAIL",
                "group_by": "route",
                "condition": {"type": "threshold", "operator": "gt", "value": 0.2},
                "channels": [{"type": "webhook", "url": hook.url, "secret": SECRET}],
            }
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
            calls = [("/chat", LEAK if i < 3 else "Sure.", i) for i in range(5)]
            calls += [("/search", LEAK if i == 0 else "Found it.", 10 + i) for i in range(5)]  # 0.2: not above
            calls += [("/help", "Call +1 415 555 2671", 20 + i) for i in range(5)]  # phones, no e-mail
            _send_routes(api, headers, "bot", calls)
            _close_all(api)
            (request,) = hook.wait_for(1, timeout=20)
        assert request.verified
        assert request.json["metric"] == "share_with_pii"
        assert request.json["summary"] == "1 route value with share_with_pii > 0.2: /chat 0.6 (of response.EMAIL)"
        (alert,) = api.client.get("/v1/alerts", headers=headers).json()
        assert alert["entities"] == ["route=/chat"]
        assert [(e["entity"], e["value"]) for e in alert["details"]["entities"]] == [("route=/chat", 0.6)]

    def test_rolling_hour_sums_windows_no_single_one_breaches(self, api: Api) -> None:
        headers = api.key("shop")
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {
                **LEAK_MONITOR,
                "metric": "entity_count",
                "dimension": "response.EMAIL",
                "window": "1h",
                "condition": {"type": "threshold", "operator": "gt", "value": 2},
                "channels": [{"type": "webhook", "url": hook.url, "secret": SECRET}],
            }
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
            # two 60 s windows, two e-mail addresses each: 2 per window, 4 over the hour
            calls = [("/chat", LEAK, offset) for offset in (1, 2, 61, 62)] + [("/chat", "Sure.", 3)]
            _send_routes(api, headers, "bot", calls)
            _close_all(api)
            (request,) = hook.wait_for(1, timeout=20)
        assert request.verified
        assert (request.json["metric"], request.json["value"]) == ("entity_count", 4.0)
        assert request.json["window_start"].startswith("2025-03-04T10:01:00")
        per_window = api.client.get(
            "/v1/stats/privacy",
            params={"model": "bot", "metric": "entity_count", "dimension": "response.EMAIL"},
            headers=headers,
        ).json()
        assert [row["value"] for row in per_window] == [2.0, 2.0]
        assert len(api.client.get("/v1/alerts", headers=headers).json()) == 1

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"group_by": "route", "dimension": ""}, "names one field of the calls"),
            ({"group_by": "route", "dimension": "correction"}, "names one field of the calls"),
            ({"window": "24h", "dimension": "comment.EMAIL"}, "names one field of the calls"),
        ],
    )
    def test_a_derived_privacy_monitor_names_a_field_of_the_calls(
        self, api: Api, change: dict[str, str], message: str
    ) -> None:
        response = api.client.post("/v1/monitors", json={**LEAK_MONITOR, **change}, headers=api.key("shop"))
        assert response.status_code == 422
        assert message in response.text
