"""No-data monitors: a model that was sending and stops fires once per silence, although none of its
windows closes, and resolves when its events return (real app, real chDB, real webhook receiver)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.monitors import Monitor, MonitorCreate
from schemas.settings import Settings
from streams.monitors.alerts import AlertStore
from streams.monitors.no_data import NoDataWatch
from streams.monitors.store import MonitorStore
from streams.storage import Storage
from streams.storage import alerts as alert_rows
from streams.storage.activity import last_seen, usual_hourly_rate
from tests.conftest import make_settings
from tests.monitors.conftest import SECRET, webhook
from tests.ui.test_pages import sign_in


def _events(model: str, n: int, *, at: datetime | None = None, **tags: str) -> list[dict[str, Any]]:
    at = at or datetime.now(UTC)
    return [
        {
            "model": model,
            "latency_ms": 100.0,
            "timestamp": (at - timedelta(milliseconds=10 * i)).isoformat(),
            "tags": tags,
        }
        for i in range(n)
    ]


class TestEmbedded:
    """The embedded runtime's own timer judges no-data monitors."""

    @pytest.fixture
    def client(self, data_dir: Path) -> Iterator[TestClient]:
        settings = make_settings(
            data_dir, allow_private_webhooks=True, delivery_backoff_seconds=0.01, no_data_check_seconds=0.2
        )
        with TestClient(serving_app(settings)) as client:
            yield client
            storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")

    def test_fires_once_when_a_model_stops_and_resolves_when_it_returns(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        headers = {"authorization": f"Bearer {services.keys.create('shop', 'test').token}"}
        with WebhookReceiver(secret=SECRET) as hook:
            monitor = {
                "monitor_id": "silence",
                "name": "Support bot silent",
                "scope": "bot",
                "family": "latency",
                "metric": "count",
                "condition": {"type": "no_data", "for": "2s"},
                "channels": [webhook(hook.url)],
            }
            created = client.post("/v1/monitors", json=monitor, headers=headers)
            assert created.status_code == 201, created.text
            assert created.json()["condition"] == {"type": "no_data", "for": "2s", "below_share": None}
            sent = client.post("/v1/inferences", json=_events("bot", 5), headers=headers)
            assert sent.status_code == 202, sent.text
            client.portal.call(services.runner.wait_idle)  # type: ignore[union-attr]
            newest = last_seen(services.storage, "shop", ["bot"], since=datetime.now(UTC) - timedelta(hours=1))["bot"]

            fired = hook.wait_for(1, timeout=60)[0]
            assert fired.event_type == "alert"
            body = fired.json
            assert body["kind"] == "no_data"
            assert body["model"] == "bot"
            assert datetime.fromisoformat(body["window_start"]) == newest
            assert datetime.fromisoformat(body["window_end"]) == newest + timedelta(seconds=2)
            assert body["summary"].startswith("no events from bot for 2s")

            again = client.post("/v1/inferences", json=_events("bot", 3), headers=headers)
            assert again.status_code == 202
            received = hook.wait_for(2, timeout=60)
            resolved = received[1].json
            assert received[1].event_type == "alert.resolved"
            assert resolved["alert_id"] == body["alert_id"]
            # the resolution came after many sweeps of the same silence: still the one alert
            listed = client.get("/v1/alerts", params={"monitor_id": "silence"}, headers=headers).json()
            alerts = listed["alerts"] if isinstance(listed, dict) else listed
            assert [a["alert_id"] for a in alerts] == [body["alert_id"]]
            assert [r.event_type for r in hook.requests] == ["alert", "alert.resolved"]
            sign_in(client, services.keys.create("shop", "ui").token)
            page = client.get(f"/ui/alerts/{body['alert_id']}", params={"project": "shop"})
            assert page.status_code == 200
            assert "no events from bot for 2s" in page.text
            assert "events again since" in page.text


def _watch(storage: Storage, settings: Settings, owner: str) -> NoDataWatch:
    return NoDataWatch(MonitorStore(storage, settings), AlertStore(storage, owner=owner), settings)


def _insert(storage: Storage, model: str, times: list[datetime], **tags: str) -> None:
    storage.insert_rows(
        "inferences",
        ["project", "event_id", "model", "timestamp", "status", "tags"],
        [["shop", f"{model}-{t.timestamp()}-{i}", model, t, "ok", tags] for i, t in enumerate(times)],
    )


class TestWatch:
    """``NoDataWatch.check`` at chosen times, on real chDB."""

    NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def _monitor(self, storage: Storage, settings: Settings, **fields: Any) -> Monitor:
        spec = {
            "name": "quiet",
            "family": "latency",
            "metric": "count",
            "condition": {"type": "no_data", "for": "15m"},
            **fields,
        }
        return MonitorStore(storage, settings).create("shop", MonitorCreate.model_validate(spec))

    def test_two_workers_announce_one_alert(self, storage: Storage, settings: Settings) -> None:
        self._monitor(storage, settings, monitor_id="quiet")
        _insert(storage, "bot", [self.NOW - timedelta(minutes=30)])
        first, second = _watch(storage, settings, "w1"), _watch(storage, settings, "w2")
        results = [first.check(self.NOW), second.check(self.NOW), first.check(self.NOW + timedelta(minutes=5))]
        announced = [alert for result in results for alert in result.alerts]
        assert len(announced) == 1
        assert announced[0].window_start == self.NOW - timedelta(minutes=30)
        assert storage.scalar(f"SELECT uniqExact(alert_id) FROM {storage.database}.alerts") == 1

    def test_a_model_never_silent_long_enough_or_never_sending_fires_nothing(
        self, storage: Storage, settings: Settings
    ) -> None:
        self._monitor(storage, settings, monitor_id="quiet")
        _insert(storage, "busy", [self.NOW - timedelta(minutes=1)])
        _insert(storage, "gone", [self.NOW - timedelta(days=3)])  # outside the 24 h lookback
        _insert(storage, "quiet", [self.NOW - timedelta(minutes=20)])
        fired = _watch(storage, settings, "w1").check(self.NOW).alerts
        assert [alert.model for alert in fired] == ["quiet"]

    def test_per_route_silence_names_the_route(self, storage: Storage, settings: Settings) -> None:
        self._monitor(storage, settings, monitor_id="routes", scope="bot", group_by="route")
        _insert(storage, "bot", [self.NOW - timedelta(minutes=1)], route="/chat")
        _insert(storage, "bot", [self.NOW - timedelta(minutes=40)], route="/search")
        watch = _watch(storage, settings, "w1")
        fired = watch.check(self.NOW).alerts
        assert [(a.model, a.entities) for a in fired] == [("bot", ["route=/search"])]
        assert "bot [route=/search]" in fired[0].summary
        _insert(storage, "bot", [self.NOW + timedelta(minutes=1)], route="/search")
        watch.check(self.NOW + timedelta(minutes=2))
        assert alert_rows.firing(watch.alerts.storage, "shop", monitor_id="routes") == []
        assert watch.alerts.resolutions.count("shop", fired[0].alert_id) == 1

    def test_below_share_of_the_usual_rate_for_the_hour(self, storage: Storage, settings: Settings) -> None:
        self._monitor(
            storage, settings, monitor_id="slow", condition={"type": "no_data", "for": "30m", "below_share": 0.2}
        )
        for week in range(1, 5):  # 120 events in this hour of each of the last four weeks
            hour = self.NOW - timedelta(weeks=week)
            _insert(storage, "bot", [hour + timedelta(seconds=30 * i) for i in range(120)])
        assert usual_hourly_rate(storage, "shop", "bot", at=self.NOW) == 120.0
        _insert(storage, "bot", [self.NOW - timedelta(minutes=10 + i) for i in range(5)])  # 5 < 0.2 * 60
        fired = _watch(storage, settings, "w1").check(self.NOW).alerts
        assert [(a.model, a.value, a.threshold) for a in fired] == [("bot", 5.0, pytest.approx(12.0))]
        _insert(storage, "bot", [self.NOW + timedelta(seconds=i) for i in range(40)])
        back = _watch(storage, settings, "w1").check(self.NOW + timedelta(minutes=1))
        assert [r.alert_id for r in back.resolved] == []
        assert back.alerts == []
        assert alert_rows.firing(storage, "shop", monitor_id="slow") == []
