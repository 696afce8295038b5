"""No bytes break a decoder: each message ends as storable events or dead letters with a reason.

Both decoders see arbitrary bytes and poisoned envelopes (``tests.poison``): the msgspec fast path
(``schemas.records``) may only return records or give up, and ``streams.decode.EventDecoder`` must
account for every message without raising, with events the sink can write (a record the sink cannot
serialise would fail every flush of its batch).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import InferenceEvent
from schemas.records import (
    FeedbackDecoder,
    FeedbackRecord,
    InferenceDecoder,
    InferenceRecord,
    RecordDecoder,
    encode_records,
    inference_record,
)
from streams.decode import EventDecoder, EventKind, feedback_decoder, inference_decoder
from streams.storage.feedback import rows_json as feedback_rows_json
from tests.poison import FEEDBACK, INFERENCE, poison_messages

_FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_KINDS = [
    pytest.param(InferenceDecoder(), inference_decoder(max_bytes=100_000), INFERENCE, id="inference"),
    pytest.param(FeedbackDecoder(), feedback_decoder(max_bytes=100_000), FEEDBACK, id="feedback"),
]


def _storable(records: list[Any]) -> None:
    """What the sink does with decoded records before ClickHouse sees them."""
    if records and isinstance(records[0], FeedbackRecord):
        feedback_rows_json(records)
    else:
        encode_records(records)


class TestRecordDecoder:
    """The fast path returns records or None (a miss), whatever the bytes."""

    @pytest.mark.parametrize(("fast", "decoder", "base"), _KINDS)
    @_FUZZ
    @given(data=st.data())
    def test_never_raises(
        self, fast: RecordDecoder[Any], decoder: EventDecoder[Any, Any], base: dict[str, Any], data: st.DataObject
    ) -> None:
        records = fast.decode(data.draw(poison_messages(base)))
        if records is not None:
            _storable(records)

    @pytest.mark.parametrize(
        "raw",
        [b'{"project":"p","model":"m\xff"}', b'[{"project":"p","model":"m"},{"project":"p","model":"\xed\xa0\x80"}]'],
    )
    def test_invalid_utf8_in_a_string_is_a_miss(self, raw: bytes) -> None:
        assert InferenceDecoder().decode(raw) is None

    def test_integers_past_64_bits_are_left_to_pydantic(self) -> None:
        raw = b'{"inference_id": "i", "kind": "score", "name": "n", "value": 1' + b"0" * 400 + b"}"
        assert FeedbackDecoder().decode(raw) is None


class TestEventDecoder:
    """Every message is accounted for: events, or dead letters that say why."""

    @pytest.mark.parametrize(("fast", "decoder", "base"), _KINDS)
    @_FUZZ
    @given(data=st.data())
    def test_total(
        self, fast: RecordDecoder[Any], decoder: EventDecoder[Any, Any], base: dict[str, Any], data: st.DataObject
    ) -> None:
        out = decoder.decode(data.draw(poison_messages(base)))
        assert out.events or out.dead_letters
        assert all(event.project for event in out.events)
        _storable(out.events)
        for letter in out.dead_letters:
            assert letter.error
            assert letter.source in ("inference", "feedback")
            orjson.loads(letter.model_dump_json())

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"", "empty message"),
            (b"[]", "empty list"),
            (b'{"project":"p","model":"m\xff"}', "invalid JSON: str is not valid UTF-8"),
            (b"[" * 3000 + b"]" * 3000, "invalid JSON: depth limit exceeded"),
            (b'{"project":"p","model":"m","prediction":' + b"9" * 400 + b"}", "invalid JSON: number is infinity"),
        ],
    )
    def test_poison_gets_a_reason(self, raw: bytes, reason: str) -> None:
        out = inference_decoder().decode(raw)
        assert not out.events
        assert [letter.error[: len(reason)] for letter in out.dead_letters] == [reason]

    def test_huge_feedback_score_is_a_dead_letter_not_a_broken_flush(self) -> None:
        raw = b'{"project":"p","inference_id":"i","kind":"score","name":"n","value":' + b"9" * 400 + b"}"
        out = feedback_decoder().decode(raw)
        assert not out.events
        assert out.dead_letters[0].error.startswith("invalid JSON: number is infinity")
        (record,) = feedback_decoder().decode(raw.replace(b"9" * 400, b"9" * 25)).events
        assert record.value == 1e25
        assert feedback_rows_json([record])

    def test_an_unforeseen_exception_is_a_dead_letter_naming_it(self) -> None:
        def to_record(event: InferenceEvent) -> InferenceRecord:
            if event.model == "boom":
                raise RuntimeError("a bug")
            return inference_record(event)

        decoder = EventDecoder(EventKind("inference", InferenceEvent, InferenceDecoder(), to_record, "event_id"))
        raw = b'[{"project": "p", "model": "boom", "latency_ms": "1"}]'  # "1": the slow path, which raises
        (letter,) = decoder.decode(raw).dead_letters
        assert letter.error == "unexpected error: RuntimeError: a bug"
        assert letter.payload == raw.decode()
        assert decoder.decode(raw.replace(b"boom", b"fine")).events[0].latency_ms == 1.0
