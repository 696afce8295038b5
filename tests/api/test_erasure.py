"""Erasure of one user's data and the audit log: real app, real embedded pipeline, real chDB; every
table is counted before and after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from streams.storage import otlp_texts as texts
from streams.storage.otlp_texts import LogTexts
from schemas.events import AlertEvent, AlertResolved
from streams.privacy.erasure import subject_ref
from streams.storage import alerts, as_utc
from streams.storage.resolutions import ResolutionStore
from tests.conftest import Api, make_settings

ADMIN = "erasure-admin-key-0123456789"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}
PROJECT = "shop"
TABLES = ("inferences", "feedback", "otlp_texts", "dead_letters", "dataset_rows", "review_items", "alerts")
T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


@pytest.fixture
def admin_api(data_dir: Path) -> Iterator[Api]:
    with TestClient(serving_app(make_settings(data_dir, admin_key=ADMIN))) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _post(api: Api, path: str, body: object, headers: dict[str, str]) -> None:
    response = api.client.post(
        path, content=orjson.dumps(body), headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


def _of_user(api: Api, user_id: str) -> dict[str, int]:
    """Rows per table that belong to ``user_id`` (counted the way a person checking would count them)."""
    storage = api.services.storage
    db = storage.database
    params = {"p": PROJECT, "u": user_id}
    ids = f"(SELECT event_id FROM {db}.inferences WHERE project = {{p:String}} AND tags['user_id'] = {{u:String}})"
    events = f"SELECT count() FROM {db}.inferences WHERE project = {{p:String}} AND tags['user_id'] = {{u:String}}"
    return {
        "inferences": storage.scalar(events, params),
        "feedback": storage.scalar(
            f"SELECT count() FROM {db}.feedback WHERE project = {{p:String}} "
            f"AND (user_id = {{u:String}} OR inference_id LIKE concat({{u:String}}, '-%'))",
            params,
        ),
        "otlp_texts": storage.scalar(
            f"SELECT count() FROM {db}.otlp_texts WHERE project = {{p:String}} AND inference_id LIKE concat({{u:String}}, '-%')",
            params,
        ),
        "dead_letters": storage.scalar(
            f"SELECT count() FROM {db}.dead_letters WHERE project = {{p:String}} AND position(payload, {{u:String}}) > 0",
            params,
        ),
        "dataset_rows": storage.scalar(
            f"SELECT count() FROM {db}.dataset_rows WHERE project = {{p:String}} "
            f"AND (user_id = {{u:String}} OR inference_id LIKE concat({{u:String}}, '-%'))",
            params,
        ),
        "review_items": sum(
            storage.scalar(
                f"SELECT count() FROM {db}.{table} WHERE project = {{p:String}} "
                f"AND inference_id LIKE concat({{u:String}}, '-%')",
                params,
            )
            for table in ("queue_items", "queue_reviews")
        ),
        "alerts": storage.scalar(
            f"SELECT count() FROM {db}.alerts WHERE project = {{p:String}} "
            "AND has(entities, concat('user_id=', {u:String}))",
            params,
        ),
        # not a count the answer has: a watermark is kept, without the call's id
        "_watermarks": storage.scalar(
            f"SELECT count() FROM {db}.queue_watermarks WHERE project = {{p:String}} "
            f"AND inference_id LIKE concat({{u:String}}, '-%')",
            params,
        ),
    } | {"_ids": len(storage.rows(ids, params))}


def _alert(alert_id: str, *entities: str) -> AlertEvent:
    """An alert of a monitor grouped by ``user_id`` naming ``entities``."""
    return AlertEvent(
        alert_id=alert_id,
        project=PROJECT,
        monitor_id="cost-per-user",
        model="m",
        kind="cost",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        metric="cost_usd",
        dimension=entities[0],
        value=31.0,
        threshold=20.0,
        dedup_key=f"cost-per-user:{alert_id}",
        summary=f"{len(entities)} user_id values with cost_usd > $20.0000",
        entities=list(entities),
    )


def _alert_state(api: Api, alert_id: str) -> tuple[int, int, int]:
    """(alert rows, acknowledgements, resolutions) stored of one alert."""
    storage = api.services.storage
    return tuple(  # type: ignore[return-value]
        int(
            storage.scalar(
                f"SELECT count() FROM {storage.database}.{table} WHERE project = {{p:String}} AND alert_id = {{a:String}}",
                {"p": PROJECT, "a": alert_id},
            )
        )
        for table in ("alerts", "alert_acks", "alert_resolutions")
    )


def _seed(api: Api, headers: dict[str, str]) -> None:
    """Two users' events (ids start with the user), feedback on them and by them, OTLP texts, a dead letter."""
    events = [
        {"event_id": f"{user}-{n}", "model": "m", "prompt": f"hello {n}", "tags": {"user_id": user}}
        for user in ("ana", "bob")
        for n in range(3)
    ]
    _post(api, "/v1/inferences", events, headers)
    feedback = [
        {"feedback_id": "f-ana-0", "inference_id": "ana-0", "kind": "thumbs", "value": 1},
        {"feedback_id": "f-ana-1", "inference_id": "ana-1", "kind": "comment", "text": "wrong answer"},
        {"feedback_id": "f-bob-0", "inference_id": "bob-0", "kind": "thumbs", "value": -1},
        # ana rates bob's answer: her feedback goes, his event stays
        {"feedback_id": "f-by-ana", "inference_id": "bob-1", "kind": "thumbs", "value": 1, "user_id": "ana"},
    ]
    _post(api, "/v1/feedback", feedback, headers)
    api.wait_written()
    storage = api.services.storage
    texts.store(storage, PROJECT, [LogTexts("ana-2", "prompt text", "response text"), LogTexts("bob-2", "p", "r")])
    pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
    bad = [{"project": PROJECT, "model": "m", "latency_ms": -1, "tags": {"user_id": "ana"}}]
    assert len(pipeline.accept_raw("inference", orjson.dumps(bad)).dead_letters) == 1
    api.wait_written()
    # a dataset version of every feedback row, and both users' calls in a review queue
    made = api.client.post("/v1/datasets", json={"name": "all", "format": "jsonl"}, headers=headers)
    assert made.status_code == 201, made.text
    queue = {"queue_id": "q", "fields": [{"name": "ok", "type": "boolean"}]}
    assert api.client.post("/v1/queues", json=queue, headers=headers).status_code == 201
    added = api.client.post("/v1/queues/q/items", json={"inference_ids": ["ana-0", "bob-0"]}, headers=headers)
    assert added.json() == {"added": 2}, added.text
    # where two queues' arrival scans stand: at one of ana's calls, and at one of bob's
    marks = [[PROJECT, "q", T0, "ana-2"], [PROJECT, "q2", T0, "bob-2"]]
    storage.insert_rows("queue_watermarks", ["project", "queue_id", "arrived_at", "inference_id"], marks)
    # alerts of a monitor grouped by user: one names ana (and bob), acknowledged and resolved; one names
    # bob only; one names a user whose id starts like ana's
    alerts.insert(storage, [_alert("a-ana", "user_id=ana", "user_id=bob"), _alert("a-bob", "user_id=bob")], {})
    alerts.insert(storage, [_alert("a-anabel", "user_id=anabel")], {})
    alerts.insert_ack(storage, PROJECT, "a-ana", by="oncall", note="looked")
    resolved = AlertResolved(
        resolution_id="r-ana",
        alert_id="a-ana",
        project=PROJECT,
        monitor_id="cost-per-user",
        model="m",
        summary="1 user_id value with cost_usd > $20.0000: ana $31.0000",
        fired_window_start=T0,
        calm_since=T0 + timedelta(hours=1),
        calm_windows=2,
        resolved_window_end=T0 + timedelta(hours=3),
    )
    ResolutionStore(storage).insert([resolved], {})


class TestErasure:
    """DELETE /v1/subjects/{user_id} removes the user's rows from every table, once."""

    def test_every_table_and_idempotent(self, admin_api: Api) -> None:
        api = admin_api
        admin_key = api.client.post("/v1/keys", json={"project": PROJECT, "scope": "admin"}, headers=ADMIN_HEADERS)
        headers = {"authorization": f"Bearer {admin_key.json()['token']}"}
        _seed(api, api.key(PROJECT))
        before = _of_user(api, "ana")
        assert before == {
            "inferences": 3,
            "feedback": 3,
            "otlp_texts": 1,
            "dead_letters": 1,
            "dataset_rows": 3,
            "review_items": 1,
            "alerts": 1,
            "_watermarks": 1,
            "_ids": 3,
        }
        assert _alert_state(api, "a-ana") == (1, 1, 1)
        bob_before = _of_user(api, "bob")

        first = api.client.delete("/v1/subjects/ana", headers=headers)
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["deleted"] == {
            "inferences": 3,
            "feedback": 3,
            "otlp_texts": 1,
            "dead_letters": 1,
            "dataset_rows": 3,
            "review_items": 1,
            "alerts": 1,
        }
        assert body["statistics"] == "kept"
        assert body["subject"] == subject_ref(PROJECT, "ana")
        assert _of_user(api, "ana") == dict.fromkeys((*TABLES, "_watermarks", "_ids"), 0)
        storage = api.services.storage
        marks = storage.query(
            f"SELECT arrived_at, inference_id FROM {storage.database}.queue_watermarks WHERE queue_id = 'q'"
        )
        assert (T0, "") in [(as_utc(at), call) for at, call in marks.result_rows]  # the scan keeps its place
        bob_after = _of_user(api, "bob")
        # ana's rating of bob's answer went, from the feedback and from the dataset
        # and the alert that named both of them, with its acknowledgement and resolution
        assert bob_after == bob_before | {
            "feedback": bob_before["feedback"] - 1,
            "dataset_rows": bob_before["dataset_rows"] - 1,
            "alerts": bob_before["alerts"] - 1,
        }
        assert _alert_state(api, "a-ana") == (0, 0, 0)
        assert _alert_state(api, "a-bob") == (1, 0, 0)
        assert _alert_state(api, "a-anabel") == (1, 0, 0)  # a user whose id merely starts like ana's keeps hers
        assert api.client.get("/v1/inferences/bob-1", headers=api.key(PROJECT)).status_code == 200

        again = api.client.delete("/v1/subjects/ana", headers=headers)
        assert again.status_code == 200
        assert again.json()["deleted"] == dict.fromkeys(TABLES, 0)

    def test_who_may_erase(self, admin_api: Api) -> None:
        api = admin_api
        reader = api.client.post("/v1/keys", json={"project": PROJECT, "scope": "read"}, headers=ADMIN_HEADERS)
        refused = api.client.delete("/v1/subjects/ana", headers={"authorization": f"Bearer {reader.json()['token']}"})
        assert refused.status_code == 403
        assert "erasing a user's data" in refused.json()["detail"]
        unnamed = api.client.delete("/v1/subjects/ana", headers=ADMIN_HEADERS)
        assert unnamed.status_code == 400
        assert "?project=NAME" in unnamed.json()["detail"]
        named = api.client.delete("/v1/subjects/ana", params={"project": PROJECT}, headers=ADMIN_HEADERS)
        assert named.status_code == 200
        assert named.json()["deleted"] == dict.fromkeys(TABLES, 0)


class TestAuditLog:
    """Each recorded action leaves one entry naming who, when and what; GET /v1/audit reads them."""

    def test_each_action_is_recorded(self, admin_api: Api) -> None:
        api = admin_api
        made = api.client.post("/v1/keys", json={"project": PROJECT, "scope": "admin"}, headers=ADMIN_HEADERS).json()
        headers = {"authorization": f"Bearer {made['token']}"}
        me = f"key:{made['key_id']}"
        other = api.client.post("/v1/keys", json={"project": PROJECT}, headers=headers).json()
        rotated = api.client.post(f"/v1/keys/{other['key_id']}/rotate", json={"grace_seconds": 0}, headers=headers)
        assert rotated.status_code == 201
        assert api.client.delete(f"/v1/keys/{rotated.json()['key_id']}", headers=headers).status_code == 204
        monitor = {
            "name": "errors",
            "family": "latency",
            "metric": "error_rate",
            "condition": {"type": "threshold", "operator": "gt", "value": 0.5},
        }
        created = api.client.post("/v1/monitors", json=monitor, headers=headers)
        assert created.status_code == 201, created.text
        monitor_id = created.json()["monitor_id"]
        assert (
            api.client.patch(f"/v1/monitors/{monitor_id}", json={"enabled": False}, headers=headers).status_code == 200
        )
        assert api.client.delete(f"/v1/monitors/{monitor_id}", headers=headers).status_code == 204
        policy = {"mode": "detect"}
        assert api.client.put("/v1/privacy/policy", json=policy, headers=headers).status_code == 200
        assert api.client.delete("/v1/privacy/policy", headers=headers).status_code == 200
        assert api.client.get("/v1/feedback/export", headers=headers).status_code == 200
        assert api.client.delete("/v1/subjects/ana", headers=headers).status_code == 200

        entries = api.client.get("/v1/audit", headers=headers)
        assert entries.status_code == 200, entries.text
        seen = [(entry["action"], entry["actor"], entry["target"]) for entry in reversed(entries.json())]
        assert seen == [
            ("key.create", "admin", made["key_id"]),
            ("key.create", me, other["key_id"]),
            ("key.rotate", me, rotated.json()["key_id"]),
            ("key.revoke", me, rotated.json()["key_id"]),
            ("monitor.create", me, monitor_id),
            ("monitor.update", me, monitor_id),
            ("monitor.delete", me, monitor_id),
            ("policy.set", me, ""),
            ("policy.delete", me, ""),
            ("feedback.export", me, ""),
            ("subject.erase", me, subject_ref(PROJECT, "ana")),
        ]
        erased = entries.json()[0]
        assert erased["details"] == dict.fromkeys(TABLES, 0)
        assert "ana" not in orjson.dumps(entries.json()).decode()  # the subject is a hash, never the id
        only = api.client.get("/v1/audit", params={"action": "monitor.update"}, headers=headers).json()
        assert [entry["details"] for entry in only] == [{"fields": "enabled"}]

    def test_a_project_key_reads_its_own_project_only(self, admin_api: Api) -> None:
        api = admin_api
        for project in (PROJECT, "other"):
            api.client.post("/v1/keys", json={"project": project, "name": project}, headers=ADMIN_HEADERS)
        mine = api.client.post("/v1/keys", json={"project": PROJECT, "scope": "admin"}, headers=ADMIN_HEADERS).json()
        headers = {"authorization": f"Bearer {mine['token']}"}
        assert {entry["project"] for entry in api.client.get("/v1/audit", headers=headers).json()} == {PROJECT}
        refused = api.client.get("/v1/audit", params={"project": "other"}, headers=headers)
        assert refused.status_code == 403
        everything = api.client.get("/v1/audit", headers=ADMIN_HEADERS).json()
        assert {entry["project"] for entry in everything} == {PROJECT, "other"}

    def test_record_is_one_call(self, admin_api: Api) -> None:
        from streams.storage import audit

        storage = admin_api.services.storage
        audit.record(storage, audit.actor_of_key("abc"), "dataset.create", project=PROJECT, target="ds-1")
        [entry] = audit.entries(storage, project=PROJECT, action="dataset.create")
        assert (entry.actor, entry.target) == ("key:abc", "ds-1")
