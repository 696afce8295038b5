"""The embedded runner keeps consuming when one batch fails before it is buffered."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.records import InferenceRecord
from tests.conftest import Api, make_settings


class TestBatchFailure:
    """A batch whose processing raises gets no 202; the batches after it are written."""

    def test_consumer_survives_a_failing_batch(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        runner = api.services.runner
        assert runner is not None
        price = runner.pipeline.pricer.price

        def enrich_or_fail(events: Sequence[InferenceRecord]) -> None:
            if any(event.model == "boom" for event in events):
                raise RuntimeError("enrichment failed")
            price(events)

        monkeypatch.setattr(runner.pipeline.pricer, "price", enrich_or_fail)
        headers = api.key("robust")
        with pytest.raises(RuntimeError, match="enrichment failed"):  # TestClient re-raises the 500's cause
            api.client.post("/v1/inferences", json=[{"event_id": "bad", "model": "boom"}], headers=headers)
        response = api.client.post("/v1/inferences", json=[{"event_id": "good", "model": "fine"}], headers=headers)
        assert response.status_code == 202
        assert runner.running
        db = api.services.storage.database
        stored = api.services.storage.query(f"SELECT event_id FROM {db}.inferences FINAL").result_rows
        assert stored == [("good",)]

    def test_a_bookkeeping_error_after_the_write_still_acknowledges(
        self, api: Api, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runner = api.services.runner
        assert runner is not None
        assert runner.pipeline.stats is not None

        def fail(events: Sequence[InferenceRecord]) -> None:
            raise RuntimeError("bookkeeping failed")

        monkeypatch.setattr(runner.pipeline.stats, "observe_inferences", fail)
        headers = api.key("robust")
        for n in range(3):  # the flusher keeps going after each error
            response = api.client.post("/v1/inferences", json=[{"event_id": f"e{n}", "model": "m"}], headers=headers)
            assert response.status_code == 202
        assert runner.running
        db = api.services.storage.database
        assert int(api.services.storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")) == 3


class TestBursts:
    """Every request of a burst is answered 202 once written, however the burst meets the flushes."""

    def test_every_request_of_many_bursts_is_acknowledged(self, data_dir: Path) -> None:
        settings = make_settings(data_dir, ack_timeout_seconds=5.0, commit_interval_seconds=0.005)
        with TestClient(serving_app(settings)) as client:
            api = Api(client)
            headers = api.key("bursts")

            def send(n: int) -> int:
                body = [{"event_id": f"b{n}-{i}", "model": "m"} for i in range(50)]
                return client.post("/v1/inferences", json=body, headers=headers).status_code

            with ThreadPoolExecutor(8) as pool:
                for burst in range(15):  # a request that lands during a write must not wait for the next burst
                    statuses = list(pool.map(send, range(burst * 8, burst * 8 + 8)))
                    assert statuses == [202] * 8, f"burst {burst}: {statuses}"
            db = api.services.storage.database
            assert int(api.services.storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")) == 15 * 8 * 50
            api.services.storage.command(f"DROP DATABASE IF EXISTS {db}")


class TestRefusedByStorage:
    """An event ClickHouse refuses (a real table constraint) fails its request with a 422 naming it and
    the storage error, promptly; it is a dead letter, its batch's other events are stored and the
    runner keeps writing."""

    def test_refused_event_answers_422(self, api: Api) -> None:
        storage = api.services.storage
        db = storage.database
        storage.command(f"ALTER TABLE {db}.inferences ADD CONSTRAINT no_refused CHECK model != 'refused'")
        headers = api.key("refusing")
        batch = [
            {"event_id": "ok-1", "model": "m"},
            {"event_id": "bad", "model": "refused"},
            {"event_id": "ok-2", "model": "m"},
        ]
        response = api.client.post("/v1/inferences", json=batch, headers=headers)
        assert response.status_code == 422
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", 1] and problem["type"] == "refused_by_storage"
        assert "VIOLATED_CONSTRAINT" in problem["msg"] and "dead letter" in problem["msg"]
        later = api.client.post("/v1/inferences", json=[{"event_id": "later", "model": "m"}], headers=headers)
        assert later.status_code == 202
        stored = storage.query(f"SELECT event_id FROM {db}.inferences ORDER BY event_id").result_rows
        assert stored == [("later",), ("ok-1",), ("ok-2",)]
        (letter,) = storage.rows(f"SELECT source, project, error, payload FROM {db}.dead_letters")
        assert (letter["source"], letter["project"]) == ("inference", "refusing")
        assert letter["error"].startswith("refused by storage:") and "no_refused" in letter["error"]
        assert '"bad"' in letter["payload"]
