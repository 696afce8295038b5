"""Monitors and alerts over HTTP, with the real services (embedded runner, chDB) behind the routers.

The app here is built from the real ``streams.runtime`` (the monitoring hook included) plus the
ingest, monitors and alerts routers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes import alerts, ingest, monitors
from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.monitors import Monitoring
from streams.runtime import start_runtime
from tests.conftest import Api, make_settings
from tests.monitors.conftest import SECRET, drift_rows, webhook

P95 = {
    "name": "Slow answers",
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 2000},
    "cooldown_seconds": 0,
}
DRIFT = {
    "name": "Drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
}


def build_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await start_runtime(settings)
        app.state.runtime = services
        try:
            yield
        finally:
            await services.stop(close_storage=False)  # the final flush may still fire alerts, delivered first

    app = FastAPI(lifespan=lifespan)
    app.include_router(ingest.router)
    app.include_router(monitors.router)
    app.include_router(alerts.router)
    return app


@pytest.fixture
def settings(data_dir: Any) -> Settings:
    return make_settings(
        data_dir,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
        delivery_max_attempts=3,
        window_seconds=60,
        allowed_lateness_seconds=0,
        reference_min_rows=10_000,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(build_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _monitoring(api: Api) -> Monitoring:
    return api.services.monitoring


def _fire(api: Api, rows: list[Any]) -> list[Any]:
    """Evaluate rows the way the stats hook does and wait for their delivery."""
    monitoring = _monitoring(api)
    result = monitoring.engine.evaluate(rows)
    future = monitoring.dispatcher.submit(result.alerts, result.retrains, result.monitors)
    if future is not None:
        future.result(timeout=30)
    return result.alerts


class TestMonitorCrud:
    """Create, read, patch, delete over HTTP; secrets never come back; refusals are precise."""

    def test_lifecycle_with_masked_secrets(self, api: Api) -> None:
        headers = api.key("shop")
        body = {**P95, "monitor_id": "p95", "channels": [webhook("http://127.0.0.1:9/in?token=t0ps3cret")]}
        created = api.client.post("/v1/monitors", json=body, headers=headers)
        assert created.status_code == 201, created.text
        shown = created.json()
        assert shown.pop("warnings") == []  # scope '*'
        assert SECRET not in created.text
        assert "t0ps3cret" not in created.text
        assert shown["channels"] == [
            {"type": "webhook", "url": "http://127.0.0.1:9/in", "secret": "********", "headers": {}}
        ]
        assert api.client.post("/v1/monitors", json=body, headers=headers).status_code == 409
        assert api.client.get("/v1/monitors/p95", headers=headers).json() == shown

        # read-modify-write: the masked channel sent back keeps its secret
        patched = api.client.patch(
            "/v1/monitors/p95", json={"severity": "critical", "channels": shown["channels"]}, headers=headers
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["severity"] == "critical"
        stored = _monitoring(api).store.get("shop", "p95")
        assert stored is not None
        assert stored.channels[0].secret.get_secret_value() == SECRET

        listed = api.client.get("/v1/monitors", headers=headers).json()
        assert [m["monitor_id"] for m in listed if not m["builtin"]] == ["p95"]
        assert api.client.delete("/v1/monitors/p95", headers=headers).status_code == 204
        assert api.client.get("/v1/monitors/p95", headers=headers).status_code == 404
        assert api.client.delete("/v1/monitors/p95", headers=headers).status_code == 404

    def test_validation_errors_name_the_field(self, api: Api) -> None:
        headers = api.key("shop")
        response = api.client.post("/v1/monitors", json={**P95, "metric": "p95"}, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "metric"]
        api.client.post("/v1/monitors", json={**P95, "monitor_id": "p95"}, headers=headers)
        response = api.client.patch("/v1/monitors/p95", json={"condition": {"type": "flagged"}}, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "condition"]
        assert "never flagged" in response.json()["detail"][0]["msg"]

    def test_builtin_defaults_are_listed_and_read_only(self, api: Api) -> None:
        headers = api.key("fresh")
        listed = api.client.get("/v1/monitors", headers=headers).json()
        assert len(listed) == 4
        assert all(m["builtin"] for m in listed)
        api.client.post("/v1/monitors", json={**P95, "monitor_id": "mine"}, headers=headers)
        listed = api.client.get("/v1/monitors", headers=headers).json()
        assert [m["monitor_id"] for m in listed] == ["mine", *(m["monitor_id"] for m in listed[1:])]
        assert len(listed) == 5  # the built-ins still judge what "mine" does not cover
        assert (
            api.client.patch("/v1/monitors/default-latency-p95", json={"name": "x"}, headers=headers).status_code == 409
        )
        assert api.client.delete("/v1/monitors/default-latency-p95", headers=headers).status_code == 409

    def test_a_scope_naming_no_sent_model_is_a_warning(self, api: Api) -> None:
        headers = api.key("typo")
        event = {"event_id": "e1", "model": "gpt-4o-mini", "latency_ms": 5.0}
        assert api.client.post("/v1/inferences", json=event, headers=headers).status_code == 202
        typo = api.client.post("/v1/monitors", json={**P95, "scope": "gpt-4o-minii"}, headers=headers)
        assert typo.status_code == 201  # stored all the same: the model may simply not be deployed yet
        assert typo.json()["warnings"] == [
            "scope 'gpt-4o-minii' names no model this project has sent: the monitor judges nothing until its "
            "events arrive; did you mean 'gpt-4o-mini'?"
        ]
        other = api.client.post("/v1/monitors", json={**P95, "scope": "llama"}, headers=headers).json()
        assert other["warnings"][0].endswith("; models sent: 'gpt-4o-mini'")
        for scope in ("gpt-4o-mini", "*"):
            fine = api.client.post("/v1/monitors", json={**P95, "scope": scope}, headers=headers)
            assert (fine.status_code, fine.json()["warnings"]) == (201, [])
        fixed = api.client.patch(
            f"/v1/monitors/{typo.json()['monitor_id']}", json={"scope": "gpt-4o-mini"}, headers=headers
        )
        assert (fixed.status_code, fixed.json()["warnings"]) == (200, [])

    @pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://[2002:7f00:1::]:9/x", "http://0x7f.1:9/x"])
    def test_private_webhook_refused_unless_allowed(self, api: Api, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
        """Loopback in any spelling: plain, 6to4-embedded, inet_aton number form."""
        monkeypatch.setattr(api.services.settings, "allow_private_webhooks", False)
        response = api.client.post("/v1/monitors", json={**P95, "channels": [webhook(url)]}, headers=api.key("shop"))
        assert response.status_code == 422
        problem = response.json()["detail"][0]
        assert problem["loc"] == ["body", "channels", 0, "url"]
        assert "channels[0].url" in problem["msg"]
        assert "loopback address 127.0.0.1" in problem["msg"]
        assert "LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS" in problem["msg"]
        assert _monitoring(api).store.list("shop")[0].builtin  # nothing was stored

    def test_pagerduty_and_email_channels(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        """Stored and shown as sent (nothing secret in them); a PagerDuty URL follows the webhook rule; a
        routing key variable outside PD_/PAGERDUTY_ and a malformed recipient are 422s naming the field."""
        headers = api.key("shop")
        channels = [
            {"type": "pagerduty", "routing_key_env": "PD_ONCALL", "url": "http://127.0.0.1:9/v2/enqueue"},
            {"type": "email", "to": ["oncall@example.com"], "digest_minutes": 30},
        ]
        created = api.client.post(
            "/v1/monitors", json={**P95, "monitor_id": "pd", "channels": channels}, headers=headers
        )
        assert created.status_code == 201, created.text
        assert created.json()["channels"] == channels
        assert api.client.get("/v1/monitors/pd", headers=headers).json()["channels"] == channels

        bad_env = {**P95, "channels": [{"type": "pagerduty", "routing_key_env": "LOOPWATCH_ADMIN_KEY"}]}
        response = api.client.post("/v1/monitors", json=bad_env, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:4] == ["body", "channels", 0, "pagerduty"]
        assert "starting with PD_ or PAGERDUTY_" in response.json()["detail"][0]["msg"]
        bad_to = {**P95, "channels": [{"type": "email", "to": ["ops@example.com, boss@example.com"]}]}
        response = api.client.post("/v1/monitors", json=bad_to, headers=headers)
        assert response.status_code == 422
        assert "is not an email address" in response.json()["detail"][0]["msg"]

        monkeypatch.setattr(api.services.settings, "allow_private_webhooks", False)
        response = api.client.post("/v1/monitors", json={**P95, "channels": channels[:1]}, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "channels", 0, "url"]

    def test_needs_a_key(self, api: Api) -> None:
        assert api.client.get("/v1/monitors").status_code == 401
        assert api.client.get("/v1/alerts").status_code == 401


class TestAlerts:
    """Alerts listed with filters and delivery status, detailed with attempts, acknowledged."""

    def test_list_filter_detail_and_ack(self, api: Api) -> None:
        headers = api.key("shop")
        with WebhookReceiver(secret=SECRET, fail_first=1000) as dead:
            api.client.post(
                "/v1/monitors", json={**DRIFT, "severity": "critical", "channels": [webhook(dead.url)]}, headers=headers
            )
            api.client.post("/v1/monitors", json=P95, headers=headers)
            fired = _fire(api, [*drift_rows(0), *drift_rows(1)[-1:]])
        assert len(fired) == 2
        listed = api.client.get("/v1/alerts", headers=headers).json()
        assert [a["fired_at"] for a in listed] == sorted((a["fired_at"] for a in listed), reverse=True)
        assert {a["delivery"]["status"] for a in listed} == {"failed"}  # the receiver never accepted
        assert all(a["status"] == "open" and "features" in a["details"] for a in listed)

        assert (
            len(api.client.get("/v1/alerts", params={"severity": "critical", "kind": "drift"}, headers=headers).json())
            == 2
        )
        assert api.client.get("/v1/alerts", params={"severity": "info"}, headers=headers).json() == []
        assert api.client.get("/v1/alerts", params={"model": "other"}, headers=headers).json() == []
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert api.client.get("/v1/alerts", params={"since": future}, headers=headers).json() == []
        assert len(api.client.get("/v1/alerts", params={"limit": 1}, headers=headers).json()) == 1
        bad = api.client.get("/v1/alerts", params={"since": future, "until": "2020-01-01T00:00:00Z"}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "since"]

        alert_id = listed[0]["alert_id"]
        detail = api.client.get(f"/v1/alerts/{alert_id}", headers=headers).json()
        assert len(detail["attempts"]) == 3
        assert detail["attempts"][-1]["final"] is True
        acked = api.client.post(f"/v1/alerts/{alert_id}/ack", json={"by": "alice", "note": "on it"}, headers=headers)
        assert acked.status_code == 200
        assert (acked.json()["status"], acked.json()["acked_by"], acked.json()["ack_note"]) == (
            "acked",
            "alice",
            "on it",
        )
        again = api.client.post(f"/v1/alerts/{alert_id}/ack", headers=headers).json()
        assert again["acked_by"] == "alice"
        assert again["acked_at"] == acked.json()["acked_at"]
        statuses = {a["alert_id"]: a["status"] for a in api.client.get("/v1/alerts", headers=headers).json()}
        assert statuses[alert_id] == "acked"
        assert list(statuses.values()).count("open") == 1
        assert [
            a["alert_id"] for a in api.client.get("/v1/alerts", params={"status": "acked"}, headers=headers).json()
        ] == [alert_id]
        assert api.client.post("/v1/alerts/nope/ack", headers=headers).status_code == 404
        assert api.client.get("/v1/alerts/nope", headers=headers).status_code == 404

    def test_retrain_requests(self, api: Api) -> None:
        headers = api.key("shop")
        api.client.post("/v1/monitors", json={**DRIFT, "retrain_after": 2}, headers=headers)
        _fire(api, drift_rows(0))
        _fire(api, drift_rows(1))
        requests = api.client.get("/v1/retrain-requests", headers=headers).json()
        assert len(requests) == 1
        request = requests[0]
        assert request["model"] == "m1"
        assert len(request["reason"]) == 2
        assert request["dataset"]["endpoint"] == "/v1/feedback/export"
        assert request["delivery"]["status"] == "none"
        assert api.client.get("/v1/retrain-requests", params={"model": "m2"}, headers=headers).json() == []


class TestTenantIsolation:
    """A key of project A never sees, changes or acknowledges project B's monitors or alerts."""

    def test_projects_are_separate(self, api: Api) -> None:
        a, b = api.key("project-a"), api.key("project-b")
        api.client.post("/v1/monitors", json={**DRIFT, "monitor_id": "drift"}, headers=a)
        alert_id = _fire(api, drift_rows(0, project="project-a"))[0].alert_id
        _fire(api, drift_rows(0, project="project-b"))  # b's defaults fire on b's rows

        assert api.client.get("/v1/monitors/drift", headers=b).status_code == 404
        assert api.client.patch("/v1/monitors/drift", json={"name": "x"}, headers=b).status_code == 404
        assert api.client.delete("/v1/monitors/drift", headers=b).status_code == 404
        assert all(m["builtin"] for m in api.client.get("/v1/monitors", headers=b).json())
        assert api.client.get(f"/v1/alerts/{alert_id}", headers=b).status_code == 404
        assert api.client.post(f"/v1/alerts/{alert_id}/ack", headers=b).status_code == 404
        b_alerts = api.client.get("/v1/alerts", headers=b).json()
        assert b_alerts
        assert all(x["project"] == "project-b" and x["monitor_id"].startswith("default-") for x in b_alerts)
        assert [x["alert_id"] for x in api.client.get("/v1/alerts", headers=a).json()] == [alert_id]
        assert api.client.get(f"/v1/alerts/{alert_id}", headers=a).json()["status"] == "open"


class TestEndToEnd:
    """Inferences in → window closes → stats hook → alert stored and a signed webhook received."""

    def test_slow_traffic_alerts_through_the_pipeline(self, api: Api) -> None:
        headers = api.key("live")
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {**P95, "min_samples": 5, "channels": [webhook(hook.url)]}
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
            start = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
            events = [
                {
                    "event_id": f"e{i}",
                    "model": "chat",
                    "latency_ms": 3000.0 + i,
                    "timestamp": (start + timedelta(seconds=i)).isoformat(),
                }
                for i in range(20)
            ]
            response = api.client.post(
                "/v1/inferences", content=orjson.dumps(events), headers={**headers, "content-type": "application/json"}
            )
            assert response.status_code == 202
            api.wait_written()
            pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
            api.client.portal.call(_close_all, pipeline)  # type: ignore[union-attr]
            (request,) = hook.wait_for(1, timeout=20)
        assert request.verified
        assert request.json["metric"] == "latency_p95_ms"
        assert request.json["model"] == "chat"
        listed = api.client.get("/v1/alerts", headers=headers).json()
        assert [a["alert_id"] for a in listed] == [request.json["alert_id"]]
        assert listed[0]["value"] > 2000
        assert listed[0]["window_start"].startswith("2025-03-04T10:00:00")


async def _close_all(pipeline: Any) -> None:
    import asyncio

    await asyncio.to_thread(pipeline.close_windows, force_all=True)


def test_enabled_takes_true_or_false_only(data_dir: Path) -> None:
    """``"enabled": 0`` is refused with a 422 naming the field, not coerced to false (create and PATCH)."""
    with TestClient(serving_app(make_settings(data_dir))) as client:
        token = client.app.state.runtime.keys.create("shop").token  # type: ignore[attr-defined]
        headers = {"authorization": f"Bearer {token}"}
        body = {"name": "slow", "family": "latency", "metric": "latency_p95_ms"}
        body["condition"] = {"type": "threshold", "operator": "gt", "value": 2000}
        refused = client.post("/v1/monitors", json={**body, "enabled": 0}, headers=headers)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "enabled"]
        created = client.post("/v1/monitors", json=body, headers=headers)
        assert created.status_code == 201, created.text
        monitor_id = created.json()["monitor_id"]
        for refused_change in ({"enabled": 0}, {"cooldown_seconds": False}, {"min_samples": "5"}):
            patched = client.patch(f"/v1/monitors/{monitor_id}", json=refused_change, headers=headers)
            assert patched.status_code == 422, refused_change
        assert client.patch(f"/v1/monitors/{monitor_id}", json={"enabled": False}, headers=headers).status_code == 200


class TestConditionsApi:
    """no_data, group_by and window over HTTP: refused with the field named, removed by PATCH ''."""

    def test_new_fields_validated_and_removable(self, api: Api) -> None:
        headers = api.key("shop")
        spend = {
            "monitor_id": "spend",
            "name": "user spend",
            "family": "cost",
            "metric": "cost_usd",
            "group_by": "user_id",
            "window": "24h",
            "condition": {"type": "threshold", "operator": "gt", "value": 20},
        }
        created = api.client.post("/v1/monitors", json=spend, headers=headers)
        assert created.status_code == 201, created.text
        assert (created.json()["group_by"], created.json()["window"]) == ("user_id", "24h")
        changed = api.client.patch("/v1/monitors/spend", json={"group_by": "", "window": ""}, headers=headers)
        assert changed.status_code == 200, changed.text
        assert (changed.json()["group_by"], changed.json()["window"]) == (None, None)

        bad = api.client.post(
            "/v1/monitors", json={**spend, "monitor_id": "x", "metric": "spend_anomaly"}, headers=headers
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "group_by"]
        quiet = {**spend, "monitor_id": "q", "family": "latency", "metric": "count", "group_by": None, "window": None}
        too_short = api.client.post(
            "/v1/monitors", json={**quiet, "condition": {"type": "no_data", "for": "0s"}}, headers=headers
        )
        assert too_short.status_code == 422
        assert too_short.json()["detail"][0]["loc"][:2] == ["body", "condition"]
        wrong_metric = api.client.post(
            "/v1/monitors",
            json={**quiet, "metric": "latency_p95_ms", "condition": {"type": "no_data", "for": "15m"}},
            headers=headers,
        )
        assert wrong_metric.status_code == 422
        assert "family 'latency', metric 'count'" in wrong_metric.json()["detail"][0]["msg"]
