"""Validation problems read ``location: message`` wherever they are shown, with one wording."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.ui.monitors import _messages
from schemas.events import InferenceEvent
from schemas.problems import location, problem_line, problem_lines, validation_problems
from streams.decode import describe


def _invalid_event() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        InferenceEvent.model_validate(
            {"project": "p", "model": "m", "prompt": "TOP SECRET PROMPT", "latency_ms": -1, "embedding": [1.0, "x"]}
        )
    return caught.value


class TestWording:
    """Fields are joined with dots, list items in brackets; a problem of the whole value has no location."""

    def test_location(self) -> None:
        assert location(["monitors", 2, "condition", "value"]) == "monitors[2].condition.value"
        assert location([3, "latency_ms"]) == "[3].latency_ms"
        assert location([]) == ""

    def test_line_without_a_location(self) -> None:
        assert problem_line(["channels", 0, "url"], "bad") == "channels[0].url: bad"
        assert problem_line([], "bad") == "bad"
        assert problem_line([], "bad", whole="(event)") == "(event): bad"

    def test_lines_name_every_problem_and_never_the_input(self) -> None:
        lines = problem_lines(_invalid_event(), ["batch", 4])
        assert [line.split(":")[0] for line in lines] == ["batch[4].latency_ms", "batch[4].embedding[1]"]
        assert not any("TOP SECRET" in line for line in lines)


class TestOneWordingEverywhere:
    """Ingest's dead letters and the dashboard's monitor form word the same error as the formatter."""

    def test_dead_letter_and_form_match_the_formatter(self) -> None:
        exc = _invalid_event()
        lines = problem_lines(exc)
        assert describe(exc) == "; ".join(lines)
        assert describe(exc, index=3) == "; ".join(problem_lines(exc, [3]))
        assert describe(exc, index=3).startswith("[3].latency_ms: ")
        assert _messages(validation_problems(exc, ["body"])) == lines
