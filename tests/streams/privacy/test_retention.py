"""Retention per project and kind: planted rows in a real chDB store, one project with a policy and
one without; the sweeper expires exactly the policy's project's old rows, keeps statistics when only
text expires, and a repeated sweep changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.privacy import RetentionPolicy
from schemas.settings import Settings
from streams.privacy.retention import RetentionSweeper
from streams.storage import Claims, Storage, retention_policies
from tests.conftest import Api, make_settings
from tests.waiting import wait_until

NOW = datetime.now(UTC).replace(microsecond=0)  # the OTLP texts' own 7-day TTL runs on the real clock
OLD = NOW - timedelta(days=45)  # past 30 days, within 400
ANCIENT = NOW - timedelta(days=500)
RECENT = NOW - timedelta(days=2)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


def _plant(storage: Storage, project: str) -> None:
    db = storage.database
    for name, at in (("old", OLD), ("ancient", ANCIENT), ("recent", RECENT)):
        params = {"project": project, "id": f"{project}-{name}", "at": at}
        storage.command(
            f"INSERT INTO {db}.inferences (project, event_id, model, timestamp, latency_ms, prompt, response, pii) "
            "VALUES ({project:String}, {id:String}, 'm', {at:DateTime64(3, 'UTC')}, 120, 'Hi, I am Ana', "
            "'Hello Ana', map('response', 0))",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.feedback (project, feedback_id, inference_id, timestamp, kind, text) "
            "VALUES ({project:String}, {id:String}, {id:String}, {at:DateTime64(3, 'UTC')}, 'correction', 'Fix it')",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.window_stats (project, model, window_start, window_end, family, metric, value) "
            "VALUES ({project:String}, 'm', {at:DateTime64(3, 'UTC')}, {at:DateTime64(3, 'UTC')}, 'latency', "
            "'count', 1)",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.dead_letters (received_at, source, project, error, payload) "
            "VALUES ({at:DateTime64(3, 'UTC')}, 'inference', {project:String}, 'bad', '{}')",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.otlp_texts (project, inference_id, prompt, response, ingested_at) "
            "VALUES ({project:String}, {id:String}, 'Hi', 'Hello', {at:DateTime64(3, 'UTC')})",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.alerts (project, alert_id, model, fired_at) "
            "VALUES ({project:String}, {id:String}, 'm', {at:DateTime64(3, 'UTC')})",
            params,
        )
        storage.command(
            f"INSERT INTO {db}.alert_acks (project, alert_id, acked_at) "
            "VALUES ({project:String}, {id:String}, {at:DateTime64(3, 'UTC')})",
            params,
        )


def _ids(storage: Storage, table: str, column: str, project: str, where: str = "1") -> list[str]:
    rows = storage.rows(
        f"SELECT {column} AS id FROM {storage.database}.{table} {'' if table == 'dead_letters' else 'FINAL'} "
        f"WHERE project = {{p:String}} AND {where} ORDER BY id",
        {"p": project},
    )
    return [str(row["id"]) for row in rows]


def _state(storage: Storage, project: str) -> dict[str, list[str]]:
    return {
        "events": _ids(storage, "inferences", "event_id", project),
        "events_with_text": _ids(storage, "inferences", "event_id", project, "prompt != '' AND response != ''"),
        "events_with_counts": _ids(storage, "inferences", "event_id", project, "pii['response'] = 0"),
        "feedback": _ids(storage, "feedback", "feedback_id", project),
        "feedback_with_text": _ids(storage, "feedback", "feedback_id", project, "text != ''"),
        "otlp_texts": _ids(storage, "otlp_texts", "inference_id", project),
        "window_stats": _ids(storage, "window_stats", "toString(window_start)", project),
        "dead_letters": _ids(storage, "dead_letters", "toString(received_at)", project),
        "alerts": _ids(storage, "alerts", "alert_id", project),
        "alert_acks": _ids(storage, "alert_acks", "alert_id", project),
    }


class TestSweeper:
    def test_text_expires_sooner_than_statistics(self, storage: Storage) -> None:
        for project in ("shop", "other"):
            _plant(storage, project)
        untouched = _state(storage, "other")
        retention_policies.put(
            storage, "shop", RetentionPolicy(raw_text=30, window_stats=400, dead_letters=30, alerts=400)
        )
        sweeper = RetentionSweeper(storage)
        result = sweeper.sweep(NOW)
        assert result.expired == {
            # two events and two feedback texts; the OTLP texts have a 7-day TTL of their own (gone already)
            "shop": {"raw_text": 2 + 2, "window_stats": 1, "dead_letters": 2, "alerts": 1}
        }
        shop = _state(storage, "shop")
        assert shop["events"] == ["shop-ancient", "shop-old", "shop-recent"]  # events kept: no limit on them
        assert shop["events_with_text"] == ["shop-recent"]  # text blanked after 30 days
        assert shop["events_with_counts"] == shop["events"]  # the event's numbers stay
        assert shop["feedback"] == ["shop-ancient", "shop-old", "shop-recent"]
        assert shop["feedback_with_text"] == ["shop-recent"]
        assert shop["otlp_texts"] == ["shop-recent"]
        assert len(shop["window_stats"]) == 2  # the 45-day-old statistics survive the text's expiry
        assert str(ANCIENT.date()) not in " ".join(shop["window_stats"])
        assert len(shop["dead_letters"]) == 1
        assert shop["alerts"] == ["shop-old", "shop-recent"]
        assert shop["alert_acks"] == ["shop-old", "shop-recent"]
        assert _state(storage, "other") == untouched  # no policy: nothing expired

        again = sweeper.sweep(NOW)  # idempotent: nothing is due, nothing changes
        assert again.expired == {"shop": {"raw_text": 0, "window_stats": 0, "dead_letters": 0, "alerts": 0}}
        assert _state(storage, "shop") == shop

    def test_events_and_feedback_deleted(self, storage: Storage) -> None:
        _plant(storage, "shop")
        retention_policies.put(storage, "shop", RetentionPolicy(events=30, feedback=400))
        RetentionSweeper(storage).sweep(NOW)
        shop = _state(storage, "shop")
        assert shop["events"] == ["shop-recent"]
        assert shop["feedback"] == ["shop-old", "shop-recent"]

    def test_once_across_processes_and_bounded(self, storage: Storage) -> None:
        """Two sweepers (two processes' claim owners) at the same pass: one sweeps, the other skips."""
        _plant(storage, "shop")
        retention_policies.put(storage, "shop", RetentionPolicy(raw_text=30, events=400, dead_letters=30))
        first = RetentionSweeper(storage, claims=Claims(storage, owner="host-a:1:aaaa"), max_steps=2)
        second = RetentionSweeper(storage, claims=Claims(storage, owner="host-b:2:bbbb"))
        swept = first.sweep(NOW)
        assert set(swept.expired["shop"]) == {"raw_text", "events"}  # two steps, one left for the next pass
        assert swept.left == 1
        skipped = second.sweep(NOW)
        assert (skipped.expired, skipped.skipped_projects) == ({}, ["shop"])
        assert len(_state(storage, "shop")["dead_letters"]) == 3  # the step beyond the bound waited
        later = second.sweep(NOW + timedelta(hours=1))  # the next pass: the other process may win it
        assert later.expired["shop"]["dead_letters"] == 2


class TestRetentionApi:
    """``/v1/privacy/retention``: admin-scoped, audited, validated; the pipeline's sweep enforces it."""

    def test_set_read_enforce_delete(self, data_dir: Path) -> None:
        with TestClient(serving_app(make_settings(data_dir, retention_sweep_seconds=0.5))) as client:
            api = Api(client)
            services = api.services
            admin = {"authorization": f"Bearer {services.keys.create('shop', 'a', scope='admin').token}"}
            reader = {"authorization": f"Bearer {services.keys.create('shop', 'r', scope='read').token}"}
            sender = api.key("shop")
            assert client.get("/v1/privacy/retention", headers=reader).json() == {
                "project": "shop",
                "policy": dict.fromkeys(("raw_text", "events", "feedback", "window_stats", "dead_letters", "alerts")),
                "own": False,
            }
            refused = client.put("/v1/privacy/retention", json={"raw_text": 30}, headers=reader)
            assert refused.status_code == 403
            bad = client.put("/v1/privacy/retention", json={"raw_text": 0}, headers=admin)
            assert bad.status_code == 422
            assert bad.json()["detail"][0]["loc"] == ["body", "raw_text"]
            unknown = client.put("/v1/privacy/retention", json={"prompts": 30}, headers=admin)
            assert unknown.status_code == 422
            put = client.put("/v1/privacy/retention", json={"raw_text": 30, "window_stats": 400}, headers=admin)
            assert put.status_code == 200, put.text
            assert client.get("/v1/privacy/retention", headers=reader).json()["policy"]["raw_text"] == 30

            events = [
                {"event_id": "old", "model": "m", "prompt": "Hi", "response": "Hello", "timestamp": OLD.isoformat()},
                {"event_id": "new", "model": "m", "prompt": "Hi", "response": "Hello"},
            ]
            assert client.post("/v1/inferences", json=events, headers=sender).status_code == 202
            api.wait_written()

            def blanked() -> bool:  # the window closer runs a pass every 0.5 s here
                return client.get("/v1/inferences/old", headers=reader).json()["prompt"] == ""

            wait_until(blanked, what="the sweeper blanked the old event's text", timeout=60)
            old = client.get("/v1/inferences/old", headers=reader).json()
            new = client.get("/v1/inferences/new", headers=reader).json()
            assert (old["prompt"], old["response"], old["model"]) == ("", "", "m")
            assert (new["prompt"], new["response"]) == ("Hi", "Hello")

            assert client.delete("/v1/privacy/retention", headers=admin).json()["own"] is False
            actions = [e["action"] for e in client.get("/v1/audit", headers=admin).json()]
            assert {"retention.set", "retention.delete"} <= set(actions)
            storage = services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
