"""The sink keeps what it could not write, and shutdown writes everything accepted."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from loopwatch.process import serving_app
from schemas.events import FeedbackEvent, InferenceEvent
from schemas.records import feedback_record, inference_record
from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.sink import REFUSAL_INSERTS, EventSink
from streams.storage import Storage, StorageError, StorageRejectedError


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
        with TestClient(serving_app(slow)) as client:
            services = client.app.state.runtime
            headers = {"authorization": f"Bearer {services.keys.create('bye').token}"}
            for start in range(0, 5_000, 500):
                body = [{"event_id": f"s{i}", "model": "m"} for i in range(start, start + 500)]
                assert client.post("/v1/inferences", content=orjson.dumps(body), headers=headers).status_code == 202
            storage = services.storage
        assert storage.scalar(f"SELECT count() FROM {storage.database}.inferences FINAL") == 5_000
        storage.command(f"DROP DATABASE {storage.database}")


class TestRefusedByStorage:
    """Rows ClickHouse refuses for their content (a real table constraint) are found by halving and become
    dead letters with the storage error; every other row is stored once and the flush succeeds."""

    def test_refused_rows_become_dead_letters(self, storage: Storage) -> None:
        db = storage.database
        storage.command(f"ALTER TABLE {db}.inferences ADD CONSTRAINT no_refused CHECK model != 'refused'")
        storage.command(f"ALTER TABLE {db}.feedback ADD CONSTRAINT no_nine CHECK value IS NULL OR value != 9")
        sink = EventSink(storage)
        good_ack, bad_ack, feedback_ack = object(), object(), object()
        models = ["m"] * 40
        models[7] = models[31] = "refused"
        events = [
            inference_record(InferenceEvent(project="p", model=model, event_id=f"e{i}"))
            for i, model in enumerate(models)
        ]
        sink.add_inferences(events[:5], good_ack)
        sink.add_inferences(events[5:], bad_ack)
        scores = [
            feedback_record(
                FeedbackEvent(project="p", inference_id="e0", kind="score", name="n", value=v, feedback_id=f"f{v}")
            )
            for v in (1, 9, 2)
        ]
        sink.add_feedback(scores, feedback_ack)
        written = sink.flush()
        assert (written.inferences, written.feedback, written.dead_letters, sink.pending) == (38, 2, 3, 0)
        assert list(written.acks) == [good_ack]
        assert [(r.ack, sorted(r.reasons)) for r in written.refused] == [
            (bad_ack, ["e31", "e7"]),
            (feedback_ack, ["f9"]),
        ]
        assert all("VIOLATED_CONSTRAINT" in reason for r in written.refused for reason in r.reasons.values())
        assert storage.scalar(f"SELECT count() FROM {db}.inferences") == 38  # not FINAL: each row stored once
        assert storage.scalar(f"SELECT countIf(model = 'refused') FROM {db}.inferences") == 0
        assert storage.scalar(f"SELECT count() FROM {db}.feedback") == 2
        letters = storage.rows(f"SELECT source, project, error, payload FROM {db}.dead_letters ORDER BY source")
        assert [(row["source"], row["project"]) for row in letters] == [("feedback", "p")] + [("inference", "p")] * 2
        assert all(row["error"].startswith("refused by storage: insert into ") for row in letters)
        assert "no_nine" in letters[0]["error"] and all("no_refused" in row["error"] for row in letters[1:])
        assert orjson.loads(letters[0]["payload"])["feedback_id"] == "f9"
        assert sorted(orjson.loads(row["payload"])["event_id"] for row in letters[1:]) == ["e31", "e7"]
        assert sorted(letter.error for letter in written.rejected) == sorted(row["error"] for row in letters)

    def test_a_batch_refused_row_by_row_costs_a_bounded_number_of_inserts(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        db = storage.database
        storage.command(f"ALTER TABLE {db}.inferences ADD CONSTRAINT no_refused CHECK model != 'refused'")
        inserts: list[str] = []
        real_insert = storage.insert_json

        def counted(table: str, rows_json: bytes) -> None:
            inserts.append(table)
            real_insert(table, rows_json)

        monkeypatch.setattr(storage, "insert_json", counted)  # a spy: the real engine still refuses
        sink = EventSink(storage)
        events = [inference_record(InferenceEvent(project="p", model="refused", event_id=f"r{i}")) for i in range(500)]
        sink.add_inferences(events, object())
        written = sink.flush()
        assert inserts.count("inferences") <= REFUSAL_INSERTS + 1  # not ~1,000 (one per row and halving)
        assert (written.inferences, written.dead_letters, sink.pending) == (0, 500, 0)  # every row accounted for
        assert storage.scalar(f"SELECT count() FROM {db}.dead_letters") == 500
        assert any("not narrowed down" in letter.error for letter in written.rejected)

    def test_refused_values_reach_the_dead_letter_but_not_the_logs(self, storage: Storage, settings: Settings) -> None:
        db = storage.database
        storage.command(f"ALTER TABLE {db}.inferences ADD CONSTRAINT no_secret CHECK prompt != 'SECRET-PROMPT-42'")
        pipeline = Pipeline(storage, settings)
        event = InferenceEvent(project="p", model="m", event_id="s", prompt="SECRET-PROMPT-42")
        pipeline.accept_inferences([inference_record(event)])
        with capture_logs() as logs:
            pipeline.flush()
        assert "SECRET-PROMPT-42" in storage.scalar(f"SELECT error FROM {db}.dead_letters")  # ClickHouse quotes it
        letters = [entry for entry in logs if entry["event"] == "dead_letter"]
        assert [entry["error"] for entry in letters] == ["refused by storage: VIOLATED_CONSTRAINT"]
        assert "SECRET-PROMPT-42" not in repr(logs)

    def test_a_column_the_table_lacks_is_retried_not_refused(self, storage: Storage) -> None:
        # a newer release writing to a database an older one migrated: finish the deploy, lose nothing
        with pytest.raises(StorageError) as raised:
            storage.insert_json("inferences", b'[{"event_id": "x", "column_of_a_newer_release": 1}]')
        assert "Unknown field" in str(raised.value)
        assert not isinstance(raised.value, StorageRejectedError)

    def test_an_outage_is_not_a_refusal(self, settings: Settings) -> None:
        storage = Storage(settings)  # database not created yet: the insert fails, but not for the data
        sink = EventSink(storage)
        sink.add_inferences([inference_record(InferenceEvent(project="p", model="m", event_id="a"))])
        with pytest.raises(StorageError) as raised:
            sink.flush()
        assert not isinstance(raised.value, StorageRejectedError)
        assert sink.pending == 1
