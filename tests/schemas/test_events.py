"""Event contracts: strict validation, precise errors, caps, UTC normalisation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import limits
from schemas.events import FeedbackEvent, FeedbackKind, InferenceEvent, feedback_label, feedback_number


def _inference(**fields: object) -> InferenceEvent:
    return InferenceEvent.model_validate({"project": "p", "model": "m", **fields})


def _error_fields(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in exc.value.errors()}


class TestInferenceEvent:
    """Inference events accept what apps send and name every problem."""

    def test_minimal_event_gets_id_and_time(self) -> None:
        event = _inference()
        assert len(event.event_id) == 32
        assert event.timestamp.tzinfo is UTC
        assert event.status == "ok"

    def test_naive_timestamp_is_utc_and_offsets_are_converted(self) -> None:
        assert _inference(timestamp="2026-03-01T12:00:00").timestamp == datetime(2026, 3, 1, 12, tzinfo=UTC)
        plus2 = datetime(2026, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))
        assert _inference(timestamp=plus2).timestamp == datetime(2026, 3, 1, 12, tzinfo=UTC)

    def test_unknown_field_wrong_type_and_negative_values_are_named(self) -> None:
        with pytest.raises(ValidationError) as exc:
            _inference(latency_ms=-1, input_tokens="many", colour="red")
        assert _error_fields(exc) == {"latency_ms", "input_tokens", "colour"}

    def test_missing_required_fields(self) -> None:
        with pytest.raises(ValidationError) as exc:
            InferenceEvent.model_validate({})
        assert _error_fields(exc) == {"project", "model"}

    def test_bad_event_id_and_status(self) -> None:
        with pytest.raises(ValidationError) as exc:
            _inference(event_id="has space", status="maybe")
        assert _error_fields(exc) == {"event_id", "status"}

    def test_long_prompt_is_truncated_not_rejected(self) -> None:
        event = _inference(prompt="x" * (limits.MAX_TEXT_CHARS + 10))
        assert len(event.prompt or "") == limits.MAX_TEXT_CHARS

    def test_structural_caps_are_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            _inference(
                features={f"f{i}": i for i in range(limits.MAX_FEATURES + 1)},
                embedding=[0.0] * (limits.MAX_EMBEDDING_DIM + 1),
                tags={f"t{i}": "v" for i in range(limits.MAX_TAGS + 1)},
            )
        assert _error_fields(exc) == {"features", "embedding", "tags"}

    def test_nan_is_refused(self) -> None:
        with pytest.raises(ValidationError) as exc:
            _inference(latency_ms=float("nan"))
        assert _error_fields(exc) == {"latency_ms"}

    def test_features_keep_their_types(self) -> None:
        event = _inference(features={"age": 31, "score": 0.5, "country": "NL", "vip": True, "missing": None})
        assert event.features == {"age": 31, "score": 0.5, "country": "NL", "vip": True, "missing": None}
        assert isinstance(event.features["vip"], bool)


class TestFeedbackEvent:
    """Feedback values must fit their kind."""

    @pytest.mark.parametrize(
        ("kind", "value", "extra"),
        [
            ("thumbs", 1, {}),
            ("thumbs", -1, {}),
            ("rating", 4, {}),
            ("rating", 4.5, {}),
            ("label", "spam", {}),
            ("label", 3, {}),
            ("score", 0.7, {"name": "faithfulness"}),
            ("correction", None, {"text": "the right answer"}),
            ("comment", None, {"text": "too long"}),
        ],
    )
    def test_valid(self, kind: str, value: object, extra: dict[str, object]) -> None:
        event = FeedbackEvent.model_validate(
            {"project": "p", "inference_id": "i1", "kind": kind, "value": value, **extra}
        )
        assert event.kind == FeedbackKind(kind)

    @pytest.mark.parametrize(
        ("kind", "value", "extra", "message"),
        [
            ("thumbs", 3, {}, "thumbs feedback needs value +1 or -1"),
            ("thumbs", "up", {}, "thumbs feedback needs value +1 or -1"),
            ("rating", 6, {}, "rating feedback needs a numeric value from 1 to 5"),
            ("rating", None, {}, "rating feedback needs a numeric value from 1 to 5"),
            ("label", None, {}, "label feedback needs the true label"),
            ("score", 0.5, {}, "score feedback needs a name"),
            ("correction", None, {}, "correction feedback needs a non-empty text"),
        ],
    )
    def test_invalid_says_why(self, kind: str, value: object, extra: dict[str, object], message: str) -> None:
        with pytest.raises(ValidationError, match=re.escape(message)):
            FeedbackEvent.model_validate({"project": "p", "inference_id": "i1", "kind": kind, "value": value, **extra})

    def test_boolean_thumbs_become_plus_minus_one(self) -> None:
        up = FeedbackEvent.model_validate({"project": "p", "inference_id": "i", "kind": "thumbs", "value": True})
        down = FeedbackEvent.model_validate({"project": "p", "inference_id": "i", "kind": "thumbs", "value": False})
        assert (up.value, down.value) == (1, -1)
        assert (feedback_number(up.value), feedback_number(down.value)) == (1.0, -1.0)

    def test_label_values_compare_as_strings(self) -> None:
        event = FeedbackEvent.model_validate({"project": "p", "inference_id": "i", "kind": "label", "value": 2.0})
        assert feedback_label(event.kind, event.value) == "2"

    def test_inference_id_required(self) -> None:
        with pytest.raises(ValidationError) as exc:
            FeedbackEvent.model_validate({"project": "p", "kind": "thumbs", "value": 1})
        assert _error_fields(exc) == {"inference_id"}
