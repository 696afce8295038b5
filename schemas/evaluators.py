"""Online evaluators: what scores sampled production calls (request bodies, YAML entries, stored rows).

An evaluator is one of three kinds:

* ``llm_judge``: an OpenAI-compatible chat-completions endpoint scores the call from a prompt template;
* ``code``: a built-in check that needs no model (``streams.evals.checks``);
* ``python``: the user's own function, named by dotted path (``mypkg.evals:score``).

Only ``sampling_rate`` of the calls matching ``scope`` and ``filters`` are evaluated; the choice is a
hash of (evaluator, event id), so every replica and worker makes the same one. Judge API keys never
enter this model: ``judge.api_key_env`` names an environment variable of the loopwatch process.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from schemas.events import utc_now

ANY = "*"
EvaluatorId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
EvaluatorKind = Literal["llm_judge", "code", "python"]
BUILTIN_TEMPLATES = ("faithfulness", "answer_relevance", "toxicity", "bias", "refusal", "pii_leakage")
CodeCheck = Literal[
    "json_valid",
    "json_schema",
    "regex_present",
    "regex_absent",
    "length",
    "refusal",
    "language",
    "banned_terms",
    "latency_budget",
    "cost_budget",
]
# ``{prompt}``, ``{response}``, ``{context}``, ``{reference}``, ``{tags.<key>}``: nothing else is replaced.
TEMPLATE_VARIABLE = re.compile(r"\{(prompt|response|context|reference|tags\.[A-Za-z0-9_.\-]+)\}")


def _not_a_flag(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true or false")
    return value


# 617.0 is 617; false is refused, not taken for 0; at most 10^12 (stored as 64-bit integers, and far past any use)
MAX_COUNT = 10**12
CharCount = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_not_a_flag)]
CallCount = Annotated[int, Field(ge=1, le=MAX_COUNT), BeforeValidator(_not_a_flag)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluatorFilters(_Strict):
    """Which calls of the scope are candidates (all given conditions must hold)."""

    model_version: str | None = Field(default=None, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict, max_length=20, description="e.g. {'route': '/chat'}")
    status: Literal["ok", "error"] | None = None
    thumbs_down: StrictBool = Field(
        default=False, description="only calls a user gave a thumbs-down (sampled when that feedback arrives)"
    )
    corrected: StrictBool = Field(
        default=False, description="only calls with a correction (sampled when the correction arrives)"
    )

    @property
    def on_feedback(self) -> bool:
        """Sampled when feedback arrives, not when the call does."""
        return self.thumbs_down or self.corrected


class JudgeEndpoint(_Strict):
    """An OpenAI-compatible chat-completions endpoint (``<base_url>/chat/completions``)."""

    base_url: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^https?://")]
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    api_key_env: Annotated[str, StringConstraints(max_length=100, pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")] = Field(
        default="", description="the environment variable holding the key (sent as a bearer token); '' = none"
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    input_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million input tokens (else known price)"
    )
    output_per_mtok: float | None = Field(default=None, ge=0, description="USD per million output tokens")


class ScoreOutput(_Strict):
    type: Literal["score"] = "score"
    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> ScoreOutput:
        if self.min >= self.max:
            raise ValueError("output.min must be below output.max")
        return self


class BooleanOutput(_Strict):
    type: Literal["boolean"] = "boolean"


class LabelOutput(_Strict):
    type: Literal["label"] = "label"
    labels: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=100)]], Field(min_length=2, max_length=50)
    ]


Output = Annotated[ScoreOutput | BooleanOutput | LabelOutput, Field(discriminator="type")]


class CodeConfig(_Strict):
    """A built-in check and its parameters (only those it reads: see ``streams.evals.checks``)."""

    check: CodeCheck
    pattern: str | None = Field(default=None, max_length=1000, description="regex_present / regex_absent")
    json_schema: dict[str, object] | None = Field(default=None, description="json_schema: the schema to conform to")
    min_chars: CharCount | None = None
    max_chars: CharCount | None = None
    language: str | None = Field(default=None, max_length=10, description="language: the expected ISO 639-1 code")
    terms: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=500
    )
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> CodeConfig:
        needed = {
            "json_schema": ("json_schema",),
            "regex_present": ("pattern",),
            "regex_absent": ("pattern",),
            "language": ("language",),
            "banned_terms": ("terms",),
            "latency_budget": ("max_latency_ms",),
            "cost_budget": ("max_cost_usd",),
        }.get(self.check, ())
        for name in needed:
            if not getattr(self, name):
                raise ValueError(f"check {self.check!r} needs {name!r}")
        if self.check == "length" and self.min_chars is None and self.max_chars is None:
            raise ValueError("check 'length' needs min_chars and/or max_chars")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return self


class EvaluatorSpec(_Strict):
    """The user-controlled part of an evaluator (request bodies and YAML entries share it)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: EvaluatorKind
    scope: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        default=ANY, description="a model name, or '*' for every model of the project"
    )
    filters: EvaluatorFilters = Field(default_factory=EvaluatorFilters)
    sampling_rate: float = Field(default=1.0, ge=0, le=1, description="share of matching calls evaluated")
    enabled: StrictBool = True
    daily_budget_usd: float | None = Field(
        default=None, gt=0, description="judge spend per UTC day; then sampling stops"
    )
    daily_budget_calls: CallCount | None = Field(
        default=None, description="evaluations per UTC day; then sampling stops"
    )
    # llm_judge
    judge: JudgeEndpoint | None = None
    template: Literal[BUILTIN_TEMPLATES] | None = Field(  # type: ignore[valid-type]
        default=None, description="a built-in prompt template (streams.evals.templates); or prompt_template"
    )
    prompt_template: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    output: Output | None = None
    # code
    code: CodeConfig | None = None
    # python
    function: Annotated[str, StringConstraints(max_length=300, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = (
        Field(default=None, description="python: 'package.module:function', called with the call, returning a score")
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="python: the longest one call may take")

    @model_validator(mode="after")
    def _kind_fields(self) -> EvaluatorSpec:
        if self.kind == "llm_judge":
            if self.judge is None:
                raise ValueError("an llm_judge evaluator needs 'judge' (base_url, model, api_key_env)")
            if (self.template is None) == (self.prompt_template is None):
                raise ValueError("an llm_judge evaluator needs exactly one of 'template' and 'prompt_template'")
            if self.prompt_template is not None and not TEMPLATE_VARIABLE.search(self.prompt_template):
                raise ValueError(
                    "prompt_template uses none of {prompt}, {response}, {context}, {reference}, {tags.<key>}"
                )
        elif self.kind == "code" and self.code is None:
            raise ValueError("a code evaluator needs 'code' (check and its parameters)")
        elif self.kind == "python" and self.function is None:
            raise ValueError("a python evaluator needs 'function' ('package.module:function')")
        return self


class EvaluatorCreate(EvaluatorSpec):
    """``POST /v1/evaluators``: ``evaluator_id`` is generated from the name when absent."""

    evaluator_id: EvaluatorId | None = None


class EvaluatorUpdate(BaseModel):
    """``PATCH /v1/evaluators/{id}``: the fields sent replace the stored ones; the result is validated whole."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    scope: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    filters: EvaluatorFilters | None = None
    sampling_rate: float | None = Field(default=None, ge=0, le=1)
    enabled: StrictBool | None = None
    daily_budget_usd: float | None = Field(default=None, gt=0)
    daily_budget_calls: CallCount | None = None
    judge: JudgeEndpoint | None = None
    template: str | None = None
    prompt_template: str | None = None
    output: Output | None = None
    code: CodeConfig | None = None
    function: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)


class Evaluator(EvaluatorSpec):
    """A stored evaluator of a project."""

    evaluator_id: EvaluatorId
    project: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)

    def spec_data(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"evaluator_id", "project", "created_at", "updated_at"})

    @property
    def output_kind(self) -> Literal["score", "label"]:
        """The feedback kind of its results: labels for label outputs, scores otherwise."""
        return "label" if isinstance(self.output, LabelOutput) else "score"
