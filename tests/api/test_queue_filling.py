"""Rule-based review queues keep filling as calls and their feedback arrive: a periodic pass reads what
arrived after the queue's stored watermark, samples by call id, stops at the queue's size cap, and of
two replicas one does each pass; over the real app and chDB."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.queues import Queue
from schemas.settings import Settings
from streams.queues import QueueFiller, pass_key
from streams.storage import Claims, Storage
from streams.storage.queues import QueueStore, Watermark
from tests.api.test_queues import FIELDS, post, queue
from tests.conftest import Api, make_settings
from tests.waiting import wait_until

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def call(event_id: str, minute: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": (T0 + timedelta(minutes=minute)).isoformat(),
        "model": "m",
        "prompt": f"prompt {event_id}",
        "response": "ok",
        **extra,
    }


@pytest.fixture
def live(data_dir: Path) -> Iterator[Api]:
    """The app with queue passes every 0.1 s over what arrived 0.3 s ago."""
    settings = make_settings(data_dir, queue_fill_seconds=0.1, queue_fill_settle_seconds=0.3)
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def items(api: Api, queue_id: str) -> list[str]:
    return QueueStore(api.services.storage).items("q", queue_id)


def caught_up(api: Api, queue_id: str) -> bool:
    """Whether the queue's passes have read everything that arrived (nothing past its watermark)."""
    store = QueueStore(api.services.storage)
    stored = store.get("q", queue_id)
    assert stored is not None
    return not store.arrivals(stored, store.watermark(stored), store.clock(), 1)


class TestFillingAsEventsArrive:
    """Calls and late feedback sent after a queue exists bring their calls in."""

    def test_new_calls_and_late_feedback_join_the_queue(self, live: Api) -> None:
        api, key = live, live.key("q")
        post(api, key, "/v1/inferences", [call("before", status="error")])
        api.wait_written()
        rules = [{"errors": True}, {"thumbs_down": True}, {"evaluator_below": 0.5}]
        assert queue(api, key, "triage", rules=rules)["progress"]["items"] == 1  # made from what is stored
        post(api, key, "/v1/inferences", [call("err", 1, status="error"), *(call(f"ok{i}", 2 + i) for i in range(4))])
        wait_until(lambda: "err" in items(api, "triage"), "the new failed call in the queue")
        api.wait_written()
        late = [
            {"inference_id": "ok0", "kind": "thumbs", "value": -1},
            {"inference_id": "ok1", "kind": "score", "name": "faithful", "value": 0.2, "source": "evaluator"},
            {"inference_id": "ok2", "kind": "score", "name": "faithful", "value": 0.9, "source": "evaluator"},
            {"inference_id": "ok3", "kind": "thumbs", "value": 1},
        ]
        post(api, key, "/v1/feedback", late)
        api.wait_written()
        post(api, key, "/v1/inferences", [call("last", 9, status="error")])  # arrives after that feedback
        wait_until(lambda: caught_up(api, "triage"), "the queue's passes to read the call sent last")
        assert sorted(items(api, "triage")) == ["before", "err", "last", "ok0", "ok1"]
        assert api.client.get("/v1/queues/triage", headers=key).json()["progress"]["items"] == 5

    def test_sampling_takes_the_calls_a_fill_of_the_stored_calls_takes(self, live: Api) -> None:
        api, key = live, live.key("q")
        queue(api, key, "half", rules=[{"sample_rate": 0.5}])
        post(api, key, "/v1/inferences", [call(f"s{i}", i) for i in range(40)])
        api.wait_written()
        wait_until(lambda: caught_up(api, "half"), "the queue's passes to read every call")
        taken = sorted(items(api, "half"))
        assert 0 < len(taken) < 40
        queue(api, key, "half-now", rules=[{"sample_rate": 0.5}])  # applied to the stored calls at creation
        assert sorted(items(api, "half-now")) == taken

    def test_a_queue_stops_taking_calls_at_its_size_cap(self, live: Api) -> None:
        api, key = live, live.key("q")
        queue(api, key, "capped", rules=[{"model": "m"}], max_items=3)
        post(api, key, "/v1/inferences", [call(f"c{i}", i) for i in range(10)])
        api.wait_written()
        wait_until(lambda: caught_up(api, "capped"), "the queue's passes to read every call")
        assert len(items(api, "capped")) == 3

    def test_a_queue_made_over_more_stored_calls_than_its_cap_takes_the_cap(self, live: Api) -> None:
        api, key = live, live.key("q")
        post(api, key, "/v1/inferences", [call(f"m{i}", i) for i in range(6)])
        api.wait_written()
        assert queue(api, key, "small", rules=[{}], max_items=2)["progress"]["items"] == 2
        assert post(api, key, "/v1/queues/small/fill", None, 200) == {"added": 0}

    def test_passes_start_before_the_first_fill_on_storages_clock(self, live: Api) -> None:
        """A call whose insert was in flight while the queue's first fill ran is read by a pass."""
        api, key = live, live.key("q")
        queue(api, key, "fresh", rules=[{}])
        store = QueueStore(api.services.storage)
        made = store.get("q", "fresh")
        assert made is not None
        rows = api.services.storage.query(
            f"SELECT arrived_at FROM {api.services.storage.database}.queue_watermarks WHERE queue_id = 'fresh'"
        ).result_rows
        assert len(rows) == 1  # stored at creation
        assert store.watermark(made).arrived_at < made.created_at  # storage's clock less the settling time

    def test_a_size_cap_past_its_limit_is_a_422(self, live: Api) -> None:
        api, key = live, live.key("q")
        body = {"queue_id": "big", "fields": FIELDS, "max_items": 2_000_000}
        response = api.client.post("/v1/queues", headers=key, json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "max_items"]


# ---------------------------------------------------------------- passes on the storage, several processes


def _settings(data_dir: Path, storage: Storage) -> Settings:
    return make_settings(
        data_dir, clickhouse_database=storage.database, queue_fill_settle_seconds=0, queue_fill_batch=100
    )


def _calls(storage: Storage, ids: Sequence[str]) -> None:
    storage.insert_rows(
        "inferences",
        ["project", "event_id", "model", "timestamp", "status"],
        [["q", i, "m", T0, "ok"] for i in ids],
    )


def _queue(storage: Storage, **extra: Any) -> Queue:
    made = Queue.model_validate(
        {
            "queue_id": "all",
            "fields": FIELDS,
            "rules": [{}],
            "project": "q",
            "created_at": datetime.now(UTC) - timedelta(hours=1),
            **extra,
        }
    )
    QueueStore(storage).put(made)
    return made


class RacingQueueStore(QueueStore):
    """The real store; reading the arrivals waits until the other replica has read them too."""

    def __init__(self, storage: Storage, barrier: threading.Barrier) -> None:
        super().__init__(storage)
        self._barrier = barrier

    def arrivals(self, queue: Queue, after: Watermark, upto: datetime, limit: int) -> list[Watermark]:
        found = super().arrivals(queue, after, upto, limit)
        self._barrier.wait(timeout=30)
        return found


class TestPasses:
    """Each pass starts at the stored watermark, and one process does it."""

    def test_two_replicas_at_once_add_each_call_once(self, data_dir: Path, storage: Storage) -> None:
        settings = _settings(data_dir, storage)
        made = _queue(storage)
        _calls(storage, [f"r{i}" for i in range(30)])
        barrier = threading.Barrier(2)
        fillers = [QueueFiller(storage, settings, owner=f"replica-{name}:1:x") for name in ("a", "b")]
        for filler in fillers:
            filler.queues = RacingQueueStore(storage, barrier)
        added = [0, 0]

        def run(i: int) -> None:
            added[i] = fillers[i].fill(made)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(added) == [0, 30]  # both read the same arrivals; one did the pass
        rows = storage.scalar(f"SELECT count() FROM {storage.database}.queue_items WHERE queue_id = 'all'")
        assert rows == 30  # no row added twice, merged or not

    def test_a_restarted_process_reads_on_from_the_stored_watermark(self, data_dir: Path, storage: Storage) -> None:
        settings = _settings(data_dir, storage)
        made = _queue(storage)
        first_ids = sorted(f"a{i}" for i in range(150))  # arrived at once: read in id order
        _calls(storage, first_ids)  # more than one pass reads (batch 100)
        first = QueueFiller(storage, settings)
        assert first.fill(made) == 100
        _calls(storage, ["b0", "b1"])
        restarted = QueueFiller(storage, settings, owner="restarted:1:y")
        store = restarted.queues
        unread = store.arrivals(made, store.watermark(made), store.clock(), 1000)
        assert sorted(a.inference_id for a in unread) == sorted([*first_ids[100:], "b0", "b1"])
        assert restarted.fill(made) == 52
        assert len(store.items("q", "all")) == 152

    def test_a_pass_whose_process_died_is_taken_over(self, data_dir: Path, storage: Storage) -> None:
        settings = _settings(data_dir, storage)
        made = _queue(storage)
        _calls(storage, ["d0", "d1"])
        key = pass_key(made, QueueStore(storage).watermark(made))
        assert Claims(storage, owner=f"{socket.gethostname()}:999999999:gone").claim("q", "queue_fill", [key])
        assert QueueFiller(storage, settings).fill(made) == 2  # its holder ran here and is gone: taken over

    def test_a_pass_another_host_just_claimed_is_left_to_it(self, data_dir: Path, storage: Storage) -> None:
        settings = _settings(data_dir, storage)
        made = _queue(storage)
        _calls(storage, ["h0"])
        store = QueueStore(storage)
        key = pass_key(made, store.watermark(made))
        assert Claims(storage, owner="far-host:1:x").claim("q", "queue_fill", [key])
        assert QueueFiller(storage, settings).fill(made) == 0
        assert store.items("q", "all") == []
        assert store.watermark(made) == Watermark(made.created_at)  # the pass is still the other host's
