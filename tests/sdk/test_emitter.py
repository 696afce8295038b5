"""The emitter never raises into or blocks the host app, and accounts for every event it is given.

Pointed at ports where nothing listens (real refused connections), so no broker or API is needed.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from loopwatch import Emitter
from loopwatch._server import free_port
from loopwatch.emitter import EmitterStats


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


class TestConstruction:
    """Configuration mistakes fail loudly at construction, the one place allowed to raise."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({}, "exactly one transport"),
            (
                {"kafka_bootstrap": "127.0.0.1:9092", "http_url": "http://x", "api_key": "k"},
                "exactly one transport",
            ),
            ({"http_url": "http://127.0.0.1:1"}, "api_key"),
            ({"http_url": "127.0.0.1:8000", "api_key": "k"}, "http://"),
            ({"kafka_bootstrap": "127.0.0.1:9092", "topic_prefix": "bad prefix"}, "topic_prefix"),
            ({"kafka_bootstrap": "127.0.0.1:9092", "batch_max_events": 0}, "batch_max_events"),
            ({"kafka_bootstrap": "127.0.0.1:9092", "max_buffer": 0}, "max_buffer"),
        ],
    )
    def test_bad_configuration_is_a_value_error(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Emitter("proj", **kwargs)  # type: ignore[arg-type]

    def test_bad_project_name_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="invalid project name"):
            Emitter("no spaces allowed", http_url="http://127.0.0.1:1", api_key="k")


class TestNeverBlocksNeverRaises:
    """With nothing listening, logging returns without waiting for delivery, close() gives up on what it
    cannot deliver, and losses are counted. (No timing: a call that blocked would hang the test.)"""

    def test_kafka_down(self) -> None:
        emitter = Emitter("proj", kafka_bootstrap=f"127.0.0.1:{free_port()}", linger_seconds=0.01)
        ids = [emitter.log_inference(model="m", prompt="p", latency_ms=1.0) for _ in range(1_000)]
        emitter.log_feedback(ids[0], kind="thumbs", value=1)
        logged = emitter.stats
        assert logged.sent == 0  # every call returned though nothing can be delivered
        assert logged.queued + logged.failed + logged.dropped == 1_001
        assert len(set(ids)) == 1_000
        assert all(len(event_id) == 32 for event_id in ids)

        emitter.close(timeout=2)
        stats = emitter.stats
        assert stats.sent == 0
        assert stats.queued + stats.failed + stats.dropped == 1_001
        assert stats.invalid == 0
        assert stats.failed + stats.dropped > 0
        emitter.close(timeout=2)  # idempotent
        assert emitter.log_inference(model="m")  # after close: dropped, not raised
        assert emitter.stats.dropped == stats.dropped + 1

    def test_http_down(self) -> None:
        emitter = Emitter("proj", http_url=_dead_url(), api_key="k", linger_seconds=0.01)
        for _ in range(1_000):
            emitter.log_inference(model="m", response="r", input_tokens=3)
        logged = emitter.stats
        assert (logged.sent, logged.queued + logged.failed) == (0, 1_000)  # returned though nothing was sent
        assert emitter.flush(timeout=0.2) is False  # retrying with backoff: still pending
        emitter.close(timeout=2)
        assert emitter.stats == EmitterStats(queued=0, sent=0, dropped=0, failed=1_000, invalid=0)

    def test_full_buffer_drops_new_events(self) -> None:
        with Emitter("proj", http_url=_dead_url(), api_key="k", max_buffer=10, linger_seconds=30) as emitter:
            with capture_logs() as logs:
                ids = [emitter.log_inference(model="m") for _ in range(100)]
            assert len(ids) == 100
            stats = emitter.stats
            assert (stats.queued, stats.dropped) == (10, 90)
            assert [entry["reason"] for entry in logs if entry["event"] == "emitter_event_dropped"] == ["buffer_full"]
            emitter.close(timeout=1)
        assert emitter.stats.failed == 10

    def test_invalid_events_are_counted_and_logged_without_content(self) -> None:
        with Emitter("proj", http_url=_dead_url(), api_key="k") as emitter:
            with capture_logs() as logs:
                event_id = emitter.log_inference(model="m", prompt="SECRET PROMPT", latency_ms=-1.0)
                emitter.log_inference(prompt="SECRET PROMPT")  # no model and no default_model
                emitter.log_inference(model="m", prompt="SECRET PROMPT", status="maybe")  # type: ignore[arg-type]
                emitter.log_feedback("some-id", kind="rating", value=9)
                emitter.log_feedback("some-id", kind="not-a-kind")
                emitter.log_feedback("bad id with spaces", kind="thumbs", value=1)
                with emitter.track(model="m", prompt="SECRET PROMPT", not_a_field=1):
                    pass
            assert len(event_id) == 32
            assert emitter.stats.invalid == 7
            assert emitter.stats.queued == 0
            invalid = [entry for entry in logs if entry["event"] == "emitter_event_invalid"]
            assert invalid, logs
            assert "latency_ms: Input should be greater than or equal to 0" in invalid[0]["errors"]
            assert "SECRET" not in repr(logs)
            emitter.close(timeout=0)

    def test_default_model_and_client_side_ids(self) -> None:
        with Emitter("proj", http_url=_dead_url(), api_key="k", default_model="gpt-x", linger_seconds=30) as emitter:
            assert emitter.log_inference(prompt="p", event_id="my-id-1") == "my-id-1"
            assert emitter.log_feedback("my-id-1", kind="comment", text="ok", feedback_id="fb-1") == "fb-1"
            assert emitter.stats.queued == 2
            assert emitter.stats.invalid == 0
            emitter.close(timeout=0)


def test_log_inference_takes_every_field_of_the_contract() -> None:
    """A new event field reaches apps through ``log_inference`` too: its keywords are the event's fields
    (less ``project``, which comes from the emitter)."""
    import inspect

    from loopwatch_sdk import Emitter
    from loopwatch_sdk.events import InferenceEvent

    keywords = set(inspect.signature(Emitter.log_inference).parameters) - {"self"}
    assert keywords == set(InferenceEvent.model_fields) - {"project"}
