"""Built-in code evaluators, templates and judge answers: pure functions on fixed inputs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from schemas.channels import UnsafeTargetError
from schemas.evaluators import BooleanOutput, CodeConfig, LabelOutput, ScoreOutput
from streams.evals.call import Call
from streams.evals.checks import run_check
from streams.evals.judge import AllowedHosts, JudgeError, parse_answer, vet_endpoint
from streams.evals.templates import BUILTINS, render


def call(response: str, **extra: object) -> Call:
    base: dict[str, object] = {
        "event_id": "e",
        "project": "p",
        "model": "m",
        "model_version": "",
        "timestamp": datetime.now(UTC),
        "status": "ok",
        "prompt": "What is 2+2?",
        "response": response,
    }
    base.update(extra)
    return Call(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "response", "passed"),
    [
        ({"check": "json_valid"}, '{"a": 1}', True),
        ({"check": "json_valid"}, "{a: 1}", False),
        ({"check": "json_schema", "json_schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', True),
        ({"check": "json_schema", "json_schema": {"type": "object", "required": ["a"]}}, '{"b": 1}', False),
        ({"check": "regex_present", "pattern": r"\d+"}, "it is 4", True),
        ({"check": "regex_absent", "pattern": r"\d+"}, "it is 4", False),
        ({"check": "length", "min_chars": 2, "max_chars": 5}, "four", True),
        ({"check": "length", "max_chars": 3}, "four", False),
        ({"check": "refusal"}, "I'm sorry, but I can't help with that.", False),
        ({"check": "refusal"}, "It is four.", True),
        ({"check": "language", "language": "fr"}, "La réponse est quatre, bien sûr, mon ami.", True),
        ({"check": "language", "language": "fr"}, "The answer is four, of course, my friend.", False),
        ({"check": "banned_terms", "terms": ["Competitor"]}, "try competitor.com", False),
        ({"check": "banned_terms", "terms": ["Competitor"]}, "it is four", True),
    ],
)
def test_checks(config: dict[str, object], response: str, passed: bool) -> None:
    result = run_check(call(response), CodeConfig.model_validate(config))
    assert result.passed is passed, result.explanation


def test_budgets_need_the_number() -> None:
    assert run_check(call("x", latency_ms=900.0), CodeConfig(check="latency_budget", max_latency_ms=500)).score == 0
    assert run_check(call("x", cost_usd=0.001), CodeConfig(check="cost_budget", max_cost_usd=0.01)).score == 1
    assert (
        run_check(call("x"), CodeConfig(check="cost_budget", max_cost_usd=0.01)).explanation == "the call has no cost"
    )


def test_schema_errors_say_where() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    result = run_check(call('{"n": "x"}'), CodeConfig(check="json_schema", json_schema=schema))
    assert result.explanation.startswith("at n:")


def test_render_substitutes_only_known_names_once() -> None:
    text = 'Q: {prompt}\nA: {response}\nroute={tags.route} {unknown} {"score": 1}'
    rendered = render(text, call("see {prompt}", tags={"route": "/chat"}))
    assert rendered == 'Q: What is 2+2?\nA: see {prompt}\nroute=/chat {unknown} {"score": 1}'


def test_builtins_document_their_meaning() -> None:
    assert set(BUILTINS) == {"faithfulness", "answer_relevance", "toxicity", "bias", "refusal", "pii_leakage"}
    assert all(template.meaning and "{response}" in template.text for template in BUILTINS.values())
    assert BUILTINS["faithfulness"].needs_context


class TestParseAnswer:
    """A judge's answer is read robustly, and never turned into a made-up score."""

    def test_plain_and_wrapped_json(self) -> None:
        assert parse_answer('{"score": 0.5, "explanation": "ok"}', ScoreOutput()) == (0.5, "", "ok")
        fenced = 'Sure!\n```json\n{"explanation": "fine", "score": 1}\n```'
        assert parse_answer(fenced, ScoreOutput()) == (1.0, "", "fine")
        assert parse_answer('{"verdict": "yes", "explanation": "x"}', BooleanOutput()) == (1.0, "", "x")
        labels = LabelOutput(labels=["good", "bad"])
        assert parse_answer('{"label": "bad", "explanation": "x"}', labels) == (None, "bad", "x")

    @pytest.mark.parametrize(
        ("content", "output", "message"),
        [
            ("nine out of ten", ScoreOutput(), "not a JSON object"),
            ('{"score": "high"}', ScoreOutput(), "no numeric 'score'"),
            ('{"score": 7}', ScoreOutput(min=0, max=5), "outside [0, 5]"),
            ('{"verdict": "maybe"}', BooleanOutput(), "no true/false"),
            ('{"label": "ugly"}', LabelOutput(labels=["good", "bad"]), "not one of good, bad"),
        ],
    )
    def test_unusable(self, content: str, output: ScoreOutput | BooleanOutput | LabelOutput, message: str) -> None:
        with pytest.raises(JudgeError, match=re.escape(message)):
            parse_answer(content, output)


def test_allowed_hosts_hosts_and_cidrs() -> None:
    with pytest.raises(UnsafeTargetError, match="LOOPWATCH_EVALUATOR_ALLOWED_HOSTS"):
        vet_endpoint("http://127.0.0.1:9/v1", AllowedHosts(""))
    with pytest.raises(UnsafeTargetError, match=r"private address 10\.1\.2\.3"):
        vet_endpoint("http://10.1.2.3/v1", AllowedHosts("127.0.0.0/8"))
    assert vet_endpoint("http://127.0.0.1:9/v1", AllowedHosts("10.0.0.0/8, 127.0.0.0/8"))
    assert vet_endpoint("http://10.1.2.3/v1", AllowedHosts("10.1.2.3"))
