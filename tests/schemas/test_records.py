"""The msgspec fast path never disagrees with the pydantic contract.

``RecordDecoder.decode`` may give up (return None) on anything, but whatever it accepts must be exactly
what ``InferenceEvent`` / ``FeedbackEvent`` produce for the same bytes. Hypothesis throws valid and
near-miss values at every field (wrong types, limits ±1, newlines against patterns, offsets, huge
numbers) and compares.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET
from pydantic import ValidationError

from schemas import limits
from schemas.events import FeedbackEvent, InferenceEvent
from schemas.records import (
    SERVER_FIELDS,
    FeedbackDecoder,
    FeedbackRecord,
    InferenceDecoder,
    InferenceRecord,
    encode_record,
    encode_records,
    feedback_record,
    inference_record,
)

DEFAULT_PROJECT = "from-key"

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_plain = st.one_of(st.none(), st.booleans(), st.integers(), _finite, _text)  # a feature / prediction value


def _iso(moment: datetime, tz: timezone | None) -> str:
    return (moment if tz is None else moment.replace(tzinfo=tz)).isoformat()


_zones = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
_in_range = st.builds(_iso, st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2199, 12, 30)), _zones)

# Per field: values the contract accepts, and near misses (wrong type, limit + 1, a trailing newline
# against a pattern, out-of-range times, numbers pydantic coerces and msgspec does not).
VALID: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.from_regex(r"\A[A-Za-z0-9._:\-]{1,20}\Z"), st.just("x" * limits.MAX_ID_LENGTH)),
    "name": st.one_of(st.text(min_size=1, max_size=12), st.just("n" * limits.MAX_NAME_LENGTH)),
    "optional_name": st.one_of(st.none(), _text, st.just("n" * limits.MAX_NAME_LENGTH)),
    "timestamp": _in_range,
    "non_negative": st.one_of(st.none(), st.floats(min_value=0, allow_infinity=False), st.integers(0, 10**9)),
    "tokens": st.one_of(st.none(), st.integers(0, limits.MAX_TOKENS)),
    "text": st.one_of(st.none(), _text),
    "features": st.dictionaries(st.text(min_size=1, max_size=4), _plain, max_size=4),
    "prediction": _plain,
    "probabilities": st.one_of(st.none(), st.dictionaries(st.text(max_size=2), _finite, max_size=3)),
    "embedding": st.one_of(st.none(), st.lists(st.one_of(_finite, st.integers(-9, 9)), min_size=1, max_size=4)),
    "tags": st.dictionaries(st.text(min_size=1, max_size=3), st.text(max_size=3), max_size=3),
}
NEAR_MISS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["", "a\n", "has space", "x" * (limits.MAX_ID_LENGTH + 1), 7, None]),
    "name": st.sampled_from(["", "n" * (limits.MAX_NAME_LENGTH + 1), 3, None]),
    "optional_name": st.sampled_from(["n" * (limits.MAX_NAME_LENGTH + 1), 3, ["a"]]),
    "timestamp": st.one_of(
        st.sampled_from(
            [
                "1999-12-31T23:59:59.999",
                "2000-01-01T04:00:00+05:00",
                "2200-01-01T00:00:00Z",
                "2026-11-23",
                "9999-12-31T23:00:00-05:00",
                "not a time",
                None,
            ]
        ),
        st.integers(0, 2_000_000_000),
    ),
    "non_negative": st.sampled_from([-1, -0.5, "3", True, 1e308 * 10]),
    "tokens": st.sampled_from([-1, limits.MAX_TOKENS + 1, 2**70, 3.0, 1.5, "3", True]),
    "text": st.sampled_from(["p" * (limits.MAX_TEXT_CHARS + 1), 5]),
    "features": st.sampled_from(
        [
            {"": 1},
            {"f": "s" * (limits.MAX_FEATURE_STRING_LENGTH + 1)},
            {"f": [1]},
            {f"f{i}": 1 for i in range(limits.MAX_FEATURES + 1)},
            [],
        ]
    ),
    "prediction": st.sampled_from([[1], {"a": 1}, "s" * (limits.MAX_FEATURE_STRING_LENGTH + 1)]),
    "probabilities": st.sampled_from([{"a": "x"}, {"a": None}, [0.5]]),
    "embedding": st.sampled_from([[], ["a"], [None], [0.0] * (limits.MAX_EMBEDDING_DIM + 1)]),
    "tags": st.sampled_from(
        [
            {"": "v"},
            {"k": 1},
            {"k": "v" * (limits.MAX_TAG_VALUE_LENGTH + 1)},
            {f"k{i}": "v" for i in range(limits.MAX_TAGS + 1)},
        ]
    ),
}

INFERENCE_FIELDS = {  # field → value kind above; "project" is filled from the key when absent
    "event_id": "id",
    "model": "name",
    "model_version": "optional_name",
    "provider": "optional_name",
    "timestamp": "timestamp",
    "latency_ms": "non_negative",
    "error_type": "optional_name",
    "input_tokens": "tokens",
    "output_tokens": "tokens",
    "cached_tokens": "tokens",
    "cost_usd": "non_negative",
    "prompt": "text",
    "response": "text",
    "features": "features",
    "prediction": "prediction",
    "probabilities": "probabilities",
    "embedding": "embedding",
    "tags": "tags",
}
FEEDBACK_FIELDS = {
    "feedback_id": "id",
    "inference_id": "id",
    "timestamp": "timestamp",
    "name": "optional_name",
    "user_id": "optional_name",
}
_kinds = st.sampled_from(["thumbs", "rating", "label", "score", "correction", "comment"])
_feedback_values = st.one_of(st.sampled_from([1, -1, True, False, 0, 3, 5, 6, 2.5, None, "yes", ""]), _finite, _text)


@st.composite
def _event(draw: st.DrawFn, fields: dict[str, str], required: tuple[str, ...], extra: dict[str, Any]) -> dict[str, Any]:
    """A mostly valid event: optional fields present or not, then at most one field made a near miss."""
    event = {name: draw(strategy) for name, strategy in extra.items()}
    for name, kind in fields.items():
        if name in required or draw(st.booleans()):
            event[name] = draw(VALID[kind])
    spoiled = draw(st.one_of(st.none(), st.sampled_from([*fields, "project", "unknown_field"])))
    if spoiled == "project":
        event["project"] = draw(st.sampled_from(["", "-bad", "ok\n", 5]))
    elif spoiled == "unknown_field":
        event["unknown_field"] = 1
    elif spoiled is not None:
        event[spoiled] = draw(NEAR_MISS[fields[spoiled]])
    if draw(st.booleans()) and "project" not in event:
        event["project"] = DEFAULT_PROJECT
    return event


_inference = _event(INFERENCE_FIELDS, ("model",), {"status": st.sampled_from(["ok", "error", "OK"])})
_feedback = _event(
    FEEDBACK_FIELDS,
    ("inference_id",),
    {
        "kind": _kinds,
        "value": _feedback_values,
        "text": st.one_of(st.none(), _text, st.just("t" * (limits.MAX_FEEDBACK_TEXT_CHARS + 1))),
        "source": st.sampled_from(["user", "annotator", "evaluator", "system", "robot"]),
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # orjson refuses integers past 64 bits, which are worth sending


GENERATED = {"event_id", "feedback_id", "timestamp"}  # filled at decode time when absent


def _compare(fast: list[Any] | None, items: list[dict[str, Any]], model: type[Any], to_record: Any) -> None:
    """Fast result (project filled like the API does) vs pydantic on the same items."""
    try:
        expected = [to_record(model.model_validate_json(_dumps({"project": DEFAULT_PROJECT} | item))) for item in items]
    except ValidationError:
        expected = None
    if fast is None:
        return  # giving up is always allowed; pydantic then decides
    assert expected is not None, f"fast path accepted what pydantic rejects: {items!r}"
    for record, want, item in zip(fast, expected, items, strict=True):
        if not record.project:
            record.project = DEFAULT_PROJECT
        got, exp = msgspec.structs.asdict(record), msgspec.structs.asdict(want)
        for name in GENERATED - item.keys():
            got.pop(name, None), exp.pop(name, None)
        assert got == exp
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in exp.items()}


class TestSameFieldsAsTheContract:
    @pytest.mark.parametrize(("record", "model"), [(InferenceRecord, InferenceEvent), (FeedbackRecord, FeedbackEvent)])
    def test_fields(self, record: type[msgspec.Struct], model: type[Any]) -> None:
        fields = [name for name in record.__struct_fields__ if name not in SERVER_FIELDS]
        assert fields == list(model.model_fields)


class TestAgreesWithPydantic:
    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_inference, min_size=1, max_size=3))
    def test_inferences(self, items: list[dict[str, Any]]) -> None:
        _compare(InferenceDecoder().decode(_dumps(items)), items, InferenceEvent, inference_record)

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_feedback, min_size=1, max_size=3))
    def test_feedback(self, items: list[dict[str, Any]]) -> None:
        _compare(FeedbackDecoder().decode(_dumps(items)), items, FeedbackEvent, feedback_record)


class TestFastPathTakesRealTraffic:
    """Misses cost speed, not correctness, but ordinary events must not miss."""

    def test_sdk_shaped_events_decode_fast(self) -> None:
        events = [
            InferenceEvent(
                project="p",
                model="gpt-4o",
                provider="openai",
                input_tokens=10,
                output_tokens=5,
                latency_ms=12.5,
                prompt="hi",
                response="hello",
                tags={"route": "/chat"},
                features={"age": 3, "plan": "pro", "ok": True},
                embedding=[0.1, 0.2],
            )
            for _ in range(3)
        ]
        body = InferenceDecoder().decode(orjson.dumps([event.model_dump(mode="json") for event in events]))
        assert body == [inference_record(event) for event in events]

    def test_thumbs_true_becomes_plus_one(self) -> None:
        (record,) = FeedbackDecoder().decode(b'{"inference_id": "i", "kind": "thumbs", "value": true}') or []
        assert (record.value, record.numeric_value, len(record.feedback_id)) == (1, 1.0, 32)

    def test_offsets_become_utc(self) -> None:
        (record,) = InferenceDecoder().decode(b'{"model": "m", "timestamp": "2026-01-01T05:30:00+05:30"}') or []
        assert record.timestamp == datetime(2026, 1, 1, tzinfo=UTC)
        assert record.timestamp.tzinfo is UTC

    def test_long_text_is_left_to_pydantic_which_truncates(self) -> None:
        body = orjson.dumps({"model": "m", "prompt": "p" * (limits.MAX_TEXT_CHARS + 5)})
        assert InferenceDecoder().decode(body) is None
        event = InferenceEvent.model_validate_json(orjson.dumps({"project": "p"} | orjson.loads(body)))
        assert len(event.prompt or "") == limits.MAX_TEXT_CHARS

    def test_encoding_matches_the_pydantic_json(self) -> None:
        event = InferenceEvent(
            project="p",
            model="m",
            timestamp=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            features={"a": 1.5, "b": None},
            tags={"k": "v"},
        )
        record = inference_record(event)
        (encoded,) = orjson.loads(encode_records([record]))
        assert encoded == event.model_dump(mode="json")  # no counts (redaction off): no server field at all
        assert encode_record(record) == event.model_dump_json().encode()  # the SDK's bytes, by the encoder
        record.pii = {"prompt": 0, "response": 1, "response.EMAIL": 1}
        (encoded,) = orjson.loads(encode_records([record]))
        assert {name: encoded.pop(name) for name in SERVER_FIELDS} == {"pii": record.pii}  # the server's own
        assert encoded == event.model_dump(mode="json")

    def test_envelopes_from_before_unset_counts_were_left_out_still_decode(self) -> None:
        """An envelope the API published with ``"pii":null`` (no counts) decodes as one without the field."""
        event = InferenceEvent(project="p", model="m", prompt="hi")
        sdk = event.model_dump_json().encode()
        old = sdk[:-1] + b',"pii":null}'
        for body in (old, sdk):
            (record,) = InferenceDecoder(server_fields=True).decode(b"[" + body + b"]") or []
            assert record.pii is UNSET
            assert encode_record(record) == sdk
        counted = sdk[:-1] + b',"pii":{"prompt":0}}'
        (record,) = InferenceDecoder(server_fields=True).decode(counted) or []
        assert record.pii == {"prompt": 0}
        assert encode_record(record) == counted
        assert InferenceDecoder().decode(old) is None  # a sender never sets it: the contract words the refusal
