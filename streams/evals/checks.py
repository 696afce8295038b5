"""Built-in code evaluators: pure functions of a call's response (and numbers), no model needed.

Each check returns a ``CheckResult``: ``score`` 1.0 when the call passes, 0.0 when it fails, and a short
explanation a person can read beside the call. ``run_check`` picks one by ``CodeConfig.check``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from schemas.evaluators import CodeConfig
from streams.evals.call import Call

# Phrases with which assistants decline; matched case-insensitively at word boundaries.
REFUSAL_PHRASES = (
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i'm not able to",
    "i am not able to",
    "i won't be able to",
    "i'm unable to",
    "i am unable to",
    "i can't provide",
    "i cannot provide",
    "as an ai",
    "i'm sorry, but i can't",
    "i must decline",
    "i can't do that",
    "i cannot comply",
    "i can't comply",
    "not able to help with that",
)
_REFUSAL = re.compile("|".join(re.escape(p) for p in REFUSAL_PHRASES), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CheckResult:
    score: float
    explanation: str

    @property
    def passed(self) -> bool:
        return self.score >= 1.0


def _result(passed: bool, why: str) -> CheckResult:
    return CheckResult(1.0 if passed else 0.0, why)


def json_valid(call: Call, config: CodeConfig) -> CheckResult:
    try:
        orjson.loads(call.response)
    except orjson.JSONDecodeError as exc:
        return _result(False, f"response is not valid JSON: {str(exc)[:200]}")
    return _result(True, "response is valid JSON")


def json_schema(call: Call, config: CodeConfig) -> CheckResult:
    try:
        document = orjson.loads(call.response)
    except orjson.JSONDecodeError as exc:
        return _result(False, f"response is not valid JSON: {str(exc)[:200]}")
    try:
        validator = Draft202012Validator(config.json_schema or {})
        error = next(iter(validator.iter_errors(document)), None)
    except SchemaError as exc:
        return _result(False, f"the evaluator's schema is invalid: {exc.message[:200]}")
    if error is None:
        return _result(True, "response conforms to the schema")
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return _result(False, f"at {where}: {error.message[:200]}")


def regex_present(call: Call, config: CodeConfig) -> CheckResult:
    found = re.search(config.pattern or "", call.response) is not None
    return _result(found, "pattern found" if found else "pattern not found")


def regex_absent(call: Call, config: CodeConfig) -> CheckResult:
    found = re.search(config.pattern or "", call.response) is not None
    return _result(not found, "pattern found" if found else "pattern absent")


def length(call: Call, config: CodeConfig) -> CheckResult:
    chars = len(call.response)
    if config.min_chars is not None and chars < config.min_chars:
        return _result(False, f"{chars} characters, fewer than {config.min_chars}")
    if config.max_chars is not None and chars > config.max_chars:
        return _result(False, f"{chars} characters, more than {config.max_chars}")
    return _result(True, f"{chars} characters, within bounds")


def refusal(call: Call, config: CodeConfig) -> CheckResult:
    """Score 1 when the response is NOT a refusal (the usual wish), 0 when it contains a refusal phrase."""
    match = _REFUSAL.search(call.response)
    return _result(match is None, f"refusal phrase {match[0]!r}" if match else "no refusal phrase")


def language(call: Call, config: CodeConfig) -> CheckResult:
    import py3langid  # a 2 MB model: loaded on first use, not at import

    if not call.response.strip():
        return _result(False, "empty response: no language")
    found, _ = py3langid.classify(call.response)
    expected = (config.language or "").lower()
    return _result(found == expected, f"response language {found!r}, expected {expected!r}")


def banned_terms(call: Call, config: CodeConfig) -> CheckResult:
    text = call.response.lower()
    hits = [term for term in config.terms if term.lower() in text]
    return _result(not hits, f"banned terms: {', '.join(hits[:10])}" if hits else "no banned term")


def latency_budget(call: Call, config: CodeConfig) -> CheckResult:
    if call.latency_ms is None:
        return _result(False, "the call has no latency")
    limit = config.max_latency_ms or 0.0
    return _result(call.latency_ms <= limit, f"{call.latency_ms:g} ms against a budget of {limit:g} ms")


def cost_budget(call: Call, config: CodeConfig) -> CheckResult:
    if call.cost_usd is None:
        return _result(False, "the call has no cost")
    limit = config.max_cost_usd or 0.0
    return _result(call.cost_usd <= limit, f"${call.cost_usd:.6f} against a budget of ${limit:.6f}")


CHECKS: dict[str, Callable[[Call, CodeConfig], CheckResult]] = {
    "json_valid": json_valid,
    "json_schema": json_schema,
    "regex_present": regex_present,
    "regex_absent": regex_absent,
    "length": length,
    "refusal": refusal,
    "language": language,
    "banned_terms": banned_terms,
    "latency_budget": latency_budget,
    "cost_budget": cost_budget,
}


def run_check(call: Call, config: CodeConfig) -> CheckResult:
    return CHECKS[config.check](call, config)
