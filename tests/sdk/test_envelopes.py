"""Envelope packing: the exact bytes the worker decodes, split by count and size, one key per message."""

from __future__ import annotations

from pydantic import TypeAdapter

from loopwatch.emitter._envelopes import feedback_envelopes, inference_envelopes, pack
from schemas.events import FeedbackEvent, InferenceEvent

INFERENCES = TypeAdapter(list[InferenceEvent])
FEEDBACK = TypeAdapter(list[FeedbackEvent])


def _events(n: int, models: int = 2, prompt: str = 'héllo "quoted" \u2603') -> list[InferenceEvent]:
    return [
        InferenceEvent(
            project="p", model=f"m{i % models}", prompt=prompt * (i % 5), latency_ms=i, tags={"k": "v"}
        )
        for i in range(n)
    ]


class TestEnvelopes:
    """Bodies are what TypeAdapter(list[Event]).dump_json makes, within the limits."""

    def test_body_is_byte_identical_to_the_list_dump(self) -> None:
        events = _events(7, models=1)
        (envelope,) = inference_envelopes("p", events, max_events=100, max_bytes=1_000_000)
        assert envelope.body == INFERENCES.dump_json(events)
        assert envelope.count == 7
        assert envelope.key == "p/m0"
        assert envelope.kind == "inference"

    def test_split_by_count_and_bytes_keeps_one_model_per_message(self) -> None:
        small = [InferenceEvent(project="p", model="small") for _ in range(150)]
        large = [InferenceEvent(project="p", model="large", prompt="x" * 1_000) for _ in range(150)]
        events = [event for pair in zip(small, large, strict=True) for event in pair]
        envelopes = list(inference_envelopes("p", events, max_events=40, max_bytes=20_000))
        seen: list[str] = []
        for envelope in envelopes:
            decoded = INFERENCES.validate_json(envelope.body)
            assert envelope.body == INFERENCES.dump_json(decoded)
            assert len(decoded) == envelope.count <= 40
            assert len(envelope.body) <= 20_000
            assert {f"{event.project}/{event.model}" for event in decoded} == {envelope.key}
            seen += [event.event_id for event in decoded]
        assert sorted(seen) == sorted(event.event_id for event in events)
        assert {e.count for e in envelopes if e.key == "p/small"} == {40, 30}  # the count limit bit
        assert max(e.count for e in envelopes if e.key == "p/large") < 40  # the size limit bit

    def test_an_event_larger_than_the_limit_travels_alone(self) -> None:
        items = [b'{"a":1}', b"x" * 100, b'{"b":2}']
        assert list(pack(items, max_events=10, max_bytes=50)) == [
            (b'[{"a":1}]', 1),
            (b"[" + b"x" * 100 + b"]", 1),
            (b'[{"b":2}]', 1),
        ]
        assert list(pack([], max_events=10, max_bytes=50)) == []

    def test_feedback_is_keyed_by_project(self) -> None:
        events = [
            FeedbackEvent(project="p", inference_id=f"i{i}", kind="thumbs", value=True) for i in range(5)
        ]
        envelopes = list(feedback_envelopes("p", events, max_events=2, max_bytes=1_000_000))
        assert [envelope.count for envelope in envelopes] == [2, 2, 1]
        assert {envelope.key for envelope in envelopes} == {"p"}
        assert b"".join(envelope.body for envelope in envelopes).count(b'"value":1') == 5
        assert FEEDBACK.validate_json(envelopes[0].body) == events[:2]
