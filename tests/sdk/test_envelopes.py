"""Envelope packing: the exact bytes the worker decodes, split by count and size, one key per message."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st
from loopwatch_sdk.wire import Envelope, feedback_envelopes, inference_envelopes, model_key, pack
from pydantic import TypeAdapter

from schemas.events import FeedbackEvent, InferenceEvent
from schemas.records import InferenceDecoder, encode_record

INFERENCES = TypeAdapter(list[InferenceEvent])
FEEDBACK = TypeAdapter(list[FeedbackEvent])


def _json(event: InferenceEvent | FeedbackEvent) -> bytes:
    return event.model_dump_json().encode()


def _inference(events: Iterable[InferenceEvent], *, max_events: int, max_bytes: int) -> list[Envelope]:
    return list(inference_envelopes(events, _json, max_events=max_events, max_bytes=max_bytes))


def _events(n: int, models: int = 2, prompt: str = 'héllo "quoted" \u2603') -> list[InferenceEvent]:
    return [
        InferenceEvent(project="p", model=f"m{i % models}", prompt=prompt * (i % 5), latency_ms=i, tags={"k": "v"})
        for i in range(n)
    ]


class TestEnvelopes:
    """Bodies are what TypeAdapter(list[Event]).dump_json makes, within the limits."""

    def test_body_is_byte_identical_to_the_list_dump(self) -> None:
        events = _events(7, models=1)
        (envelope,) = _inference(events, max_events=100, max_bytes=1_000_000)
        assert envelope.body == INFERENCES.dump_json(events)
        assert envelope.count == 7
        assert envelope.key == "p/m0"
        assert envelope.kind == "inference"

    def test_split_by_count_and_bytes_keeps_one_model_per_message(self) -> None:
        small = [InferenceEvent(project="p", model="small") for _ in range(150)]
        large = [InferenceEvent(project="p", model="large", prompt="x" * 1_000) for _ in range(150)]
        events = [event for pair in zip(small, large, strict=True) for event in pair]
        envelopes = _inference(events, max_events=40, max_bytes=20_000)
        seen: list[str] = []
        for envelope in envelopes:
            decoded = INFERENCES.validate_json(envelope.body)
            assert envelope.body == INFERENCES.dump_json(decoded)
            assert len(decoded) == envelope.count <= 40
            assert len(envelope.body) <= 20_000
            assert {model_key(event.project, event.model) for event in decoded} == {envelope.key}
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
        events = [FeedbackEvent(project="p", inference_id=f"i{i}", kind="thumbs", value=True) for i in range(5)]
        envelopes = list(feedback_envelopes(events, _json, max_events=2, max_bytes=1_000_000))
        assert [envelope.count for envelope in envelopes] == [2, 2, 1]
        assert {envelope.key for envelope in envelopes} == {"p"}
        assert b"".join(envelope.body for envelope in envelopes).count(b'"value":1') == 5
        assert FEEDBACK.validate_json(envelopes[0].body) == events[:2]


def test_the_server_packs_records_exactly_as_the_sdk_packs_events() -> None:
    """One wire format: the API's publisher (msgspec records) and the SDK (pydantic events) send the same messages."""
    small = [InferenceEvent(project="p", model="small", latency_ms=i) for i in range(90)]
    large = [InferenceEvent(project="q", model="large", prompt="x" * 700, tags={"k": "v"}) for _ in range(90)]
    events = [event for pair in zip(small, large, strict=True) for event in pair]
    records = InferenceDecoder().decode(INFERENCES.dump_json(events))
    assert records is not None
    limits = {"max_events": 25, "max_bytes": 10_000}
    from_records = list(inference_envelopes(records, encode_record, **limits))
    assert from_records == _inference(events, **limits)
    assert {envelope.key for envelope in from_records} == {"p/small", "q/large"}
    assert max(len(envelope.body) for envelope in from_records) <= 10_000


@given(
    items=st.lists(st.binary(max_size=60), max_size=40),
    max_events=st.integers(1, 10),
    max_bytes=st.integers(1, 200),
)
def test_pack_cuts_greedily_within_the_limits(items: list[bytes], max_events: int, max_bytes: int) -> None:
    """Every body is the JSON array of the next items, as many as fit (an oversize item travels alone)."""
    start = 0
    for body, count in pack(items, max_events=max_events, max_bytes=max_bytes):
        assert body == b"[" + b",".join(items[start : start + count]) + b"]"
        assert 1 <= count <= max_events
        assert len(body) <= max_bytes or count == 1
        start += count
        if start < len(items) and count < max_events:  # the next item would not have fit
            assert len(body) + 1 + len(items[start]) > max_bytes
    assert start == len(items)
