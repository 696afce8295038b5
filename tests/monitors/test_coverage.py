"""Coverage never disappears silently: a built-in monitor keeps judging every model and family no user
monitor covers (``streams.monitors.defaults.covers``), and a scope naming no model the project has sent
is a warning in the answer that stored the monitor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.monitors import MonitorCreate
from streams.monitors import Monitoring
from streams.monitors.defaults import covers, default_monitors, monitors_for
from tests.conftest import Api, make_settings
from tests.monitors.conftest import SECRET, drift_rows, row, webhook
from tests.streams.test_family_drift_stats import WINDOW, _events, _post, _start

FAMILY_DRIFT = {"family": "drift", "metric": "family_drift", "condition": {"type": "flagged"}}
P95 = {
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 1},
}


def _create(monitoring: Monitoring, **spec: Any) -> str:
    return monitoring.store.create("shop", MonitorCreate.model_validate({"cooldown_seconds": 0, **spec})).monitor_id


class TestCovers:
    """A user monitor takes a built-in's place only on the models in its scope and in its own family."""

    def test_covers_scope_family_and_enabled(self, monitoring: Monitoring) -> None:
        _create(monitoring, name="chat p95", scope="chat", **P95)
        _create(monitoring, name="off", scope="search", enabled=False, **P95)
        _create(monitoring, name="all drift", scope="*", **FAMILY_DRIFT)
        monitors = monitoring.store.list("shop")
        by_model = {model: sorted(m.name for m in monitors_for(monitors, model)) for model in ("chat", "search")}
        builtin = {m.family: m.name for m in default_monitors("shop", monitoring.settings)}
        assert by_model == {
            "chat": sorted(["chat p95", "all drift", builtin["quality"], builtin["cost"]]),
            "search": sorted(["all drift", builtin["quality"], builtin["latency"], builtin["cost"]]),  # "off": disabled
        }
        p95 = next(m for m in monitors if m.monitor_id == "default-latency-p95")
        assert [m.name for m in monitors if covers(m, p95, "chat")] == ["chat p95"]

    def test_builtins_fire_for_the_models_the_monitor_does_not_cover(self, monitoring: Monitoring) -> None:
        _create(monitoring, name="chat p95", scope="chat", **P95)
        _create(monitoring, name="typo drift", scope="chta", **FAMILY_DRIFT)  # covers no model that exists
        rows = [
            *(row(0, "latency", "latency_p95_ms", 9000.0, model=model) for model in ("chat", "search")),
            *drift_rows(0, model="chat"),
            *drift_rows(0, model="search"),
        ]
        fired = sorted((a.model, a.monitor_id) for a in monitoring.engine.evaluate(rows).alerts)
        chat_p95 = next(m.monitor_id for m in monitoring.store.list("shop") if m.name == "chat p95")
        assert fired == sorted(
            [
                ("chat", chat_p95),  # the user monitor judges chat's latency, the built-in p95 does not
                ("chat", "default-family-drift"),
                ("search", "default-latency-p95"),
                ("search", "default-family-drift"),
            ]
        )


@pytest.fixture
def drift_api(data_dir: Path) -> Iterator[Api]:
    settings = make_settings(
        data_dir,
        window_seconds=WINDOW,
        allowed_lateness_seconds=0,
        reference_min_rows=50,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
    )
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


class TestEndToEnd:
    """Two models drift; the project's one monitor watches model A: B's drift is still alerted."""

    def test_a_monitor_on_one_model_leaves_the_others_watched(self, drift_api: Api) -> None:
        headers = drift_api.key("two-models")
        with WebhookReceiver(secret=SECRET) as hook:
            created = drift_api.client.post(
                "/v1/monitors",
                json={"name": "A drifts", "scope": "model-a", **FAMILY_DRIFT, "channels": [webhook(hook.url)]},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            assert created.json()["warnings"] == [
                "scope 'model-a' names no model this project has sent: the monitor judges nothing until its events "
                "arrive; the project has sent no events yet"
            ]
            for model in ("model-a", "model-b"):
                for w in range(7):
                    _post(drift_api, headers, _events(w, 300, shifted=w >= 5, seed=w, model=model))
                _post(drift_api, headers, _events(9, 1, shifted=False, seed=999, model=model))  # closes 0-6
            drift_api.wait_written()
            drift_api.client.portal.call(drift_api.wait_written_stats)
            (delivered,) = hook.wait_for(1, timeout=30)
        assert delivered.verified
        assert (delivered.json["model"], delivered.json["monitor_id"]) == ("model-a", created.json()["monitor_id"])
        alerts = drift_api.client.get("/v1/alerts", headers=headers).json()
        fired = sorted((a["model"], a["monitor_id"], a["window_start"]) for a in alerts if a["kind"] == "drift")
        assert fired == [
            ("model-a", created.json()["monitor_id"], _start(5)),  # the user's monitor, delivered
            ("model-b", "default-family-drift", _start(5)),  # the built-in still watches model B
        ]
        again = drift_api.client.patch(
            f"/v1/monitors/{created.json()['monitor_id']}", json={"scope": "model-a"}, headers=headers
        )
        assert again.json()["warnings"] == []  # model-a has sent events now
