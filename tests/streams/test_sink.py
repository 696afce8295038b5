"""The sink keeps what it could not write, and shutdown writes everything accepted."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from api import create_app
from schemas.events import FeedbackEvent, InferenceEvent
from schemas.records import feedback_record, inference_record
from schemas.settings import Settings
from streams.sink import EventSink
from streams.storage import Storage, StorageError


class TestAcks:
    """An ack token comes back from the flush that wrote all of its events, never earlier."""

    def test_acks_follow_their_events(self, settings: Settings) -> None:
        storage = Storage(settings)  # database not created yet: every insert fails
        sink = EventSink(storage)
        first, second = object(), object()
        sink.add_inferences([inference_record(InferenceEvent(project="p", model="m", event_id="a"))], first)
        sink.add_feedback([feedback_record(FeedbackEvent(project="p", inference_id="a", kind="thumbs", value=1))])
        assert sink.waiting
        with pytest.raises(StorageError):
            sink.flush()
        sink.add_inferences([inference_record(InferenceEvent(project="p", model="m", event_id="b"))], second)
        storage.migrate()
        written = sink.flush()
        assert list(written.acks) == [first, second]
        assert (written.inferences, written.feedback) == (2, 1)
        assert not sink.waiting
        assert sink.pending_for(0.0) == 0.0
        assert list(sink.flush().acks) == []


class TestFailedFlush:
    """A failed write loses nothing: the buffers stay and the next flush writes them."""

    def test_buffers_survive_a_failed_flush(self, settings: Settings) -> None:
        storage = Storage(settings)  # database not created yet: every insert fails
        sink = EventSink(storage)
        sink.add_inferences(
            [inference_record(InferenceEvent(project="p", model="m", event_id=f"e{i}")) for i in range(50)]
        )
        sink.add_feedback([feedback_record(FeedbackEvent(project="p", inference_id="e1", kind="thumbs", value=1))])
        with pytest.raises(StorageError, match="UNKNOWN_DATABASE|does not exist"):
            sink.flush()
        assert sink.pending == 51
        storage.migrate()
        written = sink.flush()
        assert (written.inferences, written.feedback, sink.pending) == (50, 1, 0)
        db = storage.database
        assert storage.scalar(f"SELECT count() FROM {db}.inferences FINAL") == 50
        storage.command(f"DROP DATABASE {db}")


class TestGracefulShutdown:
    """Events accepted with 202 are in ClickHouse after an orderly shutdown, without waiting."""

    def test_shutdown_flushes(self, settings: Settings) -> None:
        slow = settings.model_copy(update={"batch_max_seconds": 30.0, "batch_max_events": 1_000_000})
        with TestClient(create_app(slow)) as client:
            services = client.app.state.services
            headers = {"authorization": f"Bearer {services.keys.create('bye').token}"}
            for start in range(0, 5_000, 500):
                body = [{"event_id": f"s{i}", "model": "m"} for i in range(start, start + 500)]
                assert client.post("/v1/inferences", content=orjson.dumps(body), headers=headers).status_code == 202
            storage = services.storage
        assert storage.scalar(f"SELECT count() FROM {storage.database}.inferences FINAL") == 5_000
        storage.command(f"DROP DATABASE {storage.database}")
