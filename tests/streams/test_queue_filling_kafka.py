"""Distributed mode: a review queue keeps filling in the process that consumes (API → Kafka → worker)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.storage.queues import QueueStore
from tests.api.test_queues import FIELDS
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def test_calls_and_late_thumbs_down_via_kafka_join_the_queue(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"queue_fill_seconds": 0.1, "queue_fill_settle_seconds": 0.3})
    with TestClient(serving_app(settings, with_worker=True)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        headers = {"authorization": f"Bearer {runtime.keys.create('kq').token}"}
        body = {"queue_id": "down", "fields": FIELDS, "rules": [{"thumbs_down": True}, {"errors": True}]}
        assert client.post("/v1/queues", headers=headers, json=body).status_code == 201
        now = datetime.now(UTC).isoformat()
        calls = [{"event_id": f"k-{i}", "model": "m", "timestamp": now, "status": "ok"} for i in range(5)]
        calls.append({"event_id": "k-err", "model": "m", "timestamp": now, "status": "error"})
        assert client.post("/v1/inferences", headers=headers, json=calls).status_code == 202
        store = QueueStore(runtime.storage)
        wait_until(lambda: store.items("kq", "down") == ["k-err"], "the failed call in the queue", timeout=120)
        thumbs = {"inference_id": "k-3", "kind": "thumbs", "value": -1}
        assert client.post("/v1/feedback", headers=headers, json=thumbs).status_code == 202
        wait_until(lambda: "k-3" in store.items("kq", "down"), "the thumbed-down call in the queue", timeout=120)
        assert sorted(store.items("kq", "down")) == ["k-3", "k-err"]
        storage = runtime.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
