"""Hypothesis strategies for poison messages: bytes that must never break a decoder, a route or a batch.

Three families, mixed: arbitrary bytes; envelopes of otherwise valid events with one field replaced by a
poison JSON fragment (invalid UTF-8 inside a string, a lone surrogate escape, nesting past any parser's
depth, numbers past 64 bits or past a double, any JSON value); and valid envelopes cut or corrupted at
a random byte. Built as bytes, because the interesting inputs are exactly those no JSON encoder makes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

INFERENCE: dict[str, Any] = {
    "project": "p",
    "event_id": "e-1",
    "model": "gpt-4o",
    "provider": "openai",
    "input_tokens": 10,
    "output_tokens": 5,
    "latency_ms": 12.5,
    "prompt": "hi",
    "response": "hello",
    "features": {"age": 3},
    "prediction": 1,
    "probabilities": {"a": 0.5},
    "embedding": [0.1],
    "tags": {"route": "/chat"},
}
FEEDBACK: dict[str, Any] = {
    "project": "p",
    "feedback_id": "f-1",
    "inference_id": "e-1",
    "kind": "score",
    "value": 0.5,
    "name": "n",
    "text": "fine",
    "source": "user",
}

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
_poison_fragments = st.sampled_from(
    [
        b'"a\xffb"',  # invalid UTF-8 inside a string
        b'"\xed\xa0\x80"',  # a UTF-8-encoded surrogate
        b'"\\ud800"',  # a lone surrogate escape
        b'"\\u0000"',
        str(2**63).encode(),
        str(2**64).encode(),
        b"1e400",
        b"-0",
        b"[" * 3000 + b"]" * 3000,  # deeper than any parser allows
        b"{" + b'"a":{' * 600 + b"1" + b"}" * 601,
        b"NaN",
        b"Infinity",
        b"",
    ]
)
_huge_numbers = st.builds(  # past 64 bits, past a double
    lambda sign, digits: sign + b"9" * digits, st.sampled_from([b"", b"-"]), st.integers(19, 400)
)
_fragments = st.one_of(_poison_fragments, _huge_numbers, _json_values.map(lambda value: json.dumps(value).encode()))


def _encode(event: dict[str, Any], field: str | None, fragment: bytes) -> bytes:
    parts = [
        json.dumps(name).encode() + b":" + (fragment if name == field else json.dumps(value).encode())
        for name, value in event.items()
    ]
    if field is not None and field not in event:
        parts.append(json.dumps(field).encode() + b":" + fragment)
    return b"{" + b",".join(parts) + b"}"


@st.composite
def _spoiled_event(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    field = draw(st.sampled_from([*base, "unknown", None]))
    return _encode(base, field, draw(_fragments))


@st.composite
def _envelope(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    events = draw(st.lists(_spoiled_event(base), min_size=1, max_size=4))
    return events[0] if len(events) == 1 and draw(st.booleans()) else b"[" + b",".join(events) + b"]"


@st.composite
def _corrupted(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    raw = _encode(base, None, b"")
    at = draw(st.integers(0, len(raw)))
    if draw(st.booleans()):
        return raw[:at]
    return raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at + draw(st.integers(0, 3)) :]


def poison_messages(base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Messages (or request bodies) built around ``base``, a valid event."""
    return st.one_of(st.binary(max_size=64), _envelope(base), _corrupted(base))
