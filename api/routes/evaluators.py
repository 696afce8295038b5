"""``/v1/evaluators``: online evaluators of the project, their previews and their recent evaluations.

Judge API keys never pass through here: an evaluator names the environment variable that holds its
key (``judge.api_key_env``), read by the loopwatch process when it calls the judge.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.deps import EvaluationsDep, ManagedProjectDep, ProjectDep
from api.errors import ErrorMessage, responses, unprocessable
from api.time_range import IsoDatetime, storable_range
from detectors.agreement import reading
from detectors.calibration import INTERVAL, MIN_AGREEMENT, MIN_PAIRS
from schemas.channels import UnsafeTargetError
from schemas.evaluators import Evaluator, EvaluatorCreate, EvaluatorUpdate
from schemas.problems import validation_problems
from streams.delivery.url_guard import UnresolvableTargetError
from streams.evals import Evaluations, EvaluatorExistsError
from streams.evals.judge import vet_endpoint
from streams.stats.judge_agreement import CALIBRATION_PERIOD, Against, JudgeAgreement, judge_agreement
from streams.storage import evaluations as queue

router = APIRouter(prefix="/v1/evaluators", tags=["evaluators"], responses=responses(400, 401, 422, 503))

EvaluatorIdPath = Annotated[str, Path(min_length=1, max_length=64)]
_NULLABLE = frozenset(
    {"daily_budget_usd", "daily_budget_calls", "judge", "template", "prompt_template", "output", "code", "function"}
)
_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorMessage, "description": "the id is taken"}}


class EvaluationOut(BaseModel):
    """One evaluation of one call: its score or label and explanation, or why there is none."""

    event_id: str
    status: str = Field(description="pending, done, error (no score) or skipped")
    score: float | None
    label: str
    explanation: str
    error: str
    judge_model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="the judge's cost (apart from the call's own cost)")
    latency_ms: float
    attempts: int
    updated_at: datetime | None = None


class BackfillRequest(BaseModel):
    """Evaluate past calls of ``[since, until)`` (sampling rate, scope and filters apply)."""

    model_config = ConfigDict(extra="forbid")

    since: IsoDatetime
    until: IsoDatetime
    max_calls: int = Field(default=10_000, ge=1, le=100_000, description="at most this many calls are read")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("an ISO 8601 date and time is expected")  # not a number of seconds
        return value


class BackfillOut(BaseModel):
    """A backfill's progress: its rows by status; done when none is pending."""

    backfill_id: str
    queued: int
    counts: dict[str, int]
    finished: bool


class EvaluationsOut(BaseModel):
    """An evaluator's newest evaluations and its use of today's budget."""

    evaluator_id: str
    counts: dict[str, int] = Field(description="evaluations by status")
    calls_today: int
    cost_today_usd: float
    over_budget: bool
    items: list[EvaluationOut]


class EstimateOut(BaseModel):
    """The thumbs-up rate estimated from the judge's scores of the period's judged calls."""

    rate: float | None = Field(description="mean P(thumbs up | score) over the judged calls; null with a reason")
    low: float | None
    high: float | None
    judged_calls: int
    interval: str
    reason: str = Field(description="why there is no estimate ('' when there is one)")


class CalibrationOut(BaseModel):
    """The judge's scores calibrated to people's thumbs on the calls that have both."""

    method: str = Field(description="platt: logistic regression P(up | score) with Platt's smoothed targets")
    pairs: int = Field(description="calls with both a judge score and a thumb the fit used")
    intercept: float | None
    slope: float | None
    usable: bool = Field(description=f"at least {MIN_PAIRS} pairs and agreement of at least {MIN_AGREEMENT} in size")
    reason: str
    people_thumbs_up_rate: float | None = Field(description="the thumbs-up rate people gave the paired calls")
    fitted_on: Literal["all", "model", "pooled"] = Field(
        description="whose pairs were fitted: every model's (no model asked), the model's own, or every model's "
        f"because the model has fewer than {MIN_PAIRS} of its own (as its windows' estimates are)"
    )
    estimate: EstimateOut


class AgreementOut(BaseModel):
    """How far an evaluator agrees with people over a period: n, the statistic and its 95 % interval."""

    evaluator_id: str
    against: str
    since: datetime
    until: datetime
    n: int = Field(description="calls with both the evaluator's newest result and people's newest feedback")
    statistic: str = Field(description="cohen_kappa (0/1 or label judges) or spearman (scores)")
    value: float | None = Field(description="null when undefined (too few calls, or one side never varies)")
    low: float | None
    high: float | None
    interval: str = Field(description="how the 95 % confidence interval is computed")
    reading: str = Field(
        description="the value in words: Landis & Koch's bands for kappa, Cohen's (1988) sizes of a correlation for rho"
    )
    calibration: CalibrationOut | None = Field(description="against thumbs, for an evaluator that scores")


def _agreement_out(evaluator_id: str, since: datetime, until: datetime, found: JudgeAgreement) -> AgreementOut:
    a, calibration, calibration_out = found.agreement, found.calibration, None
    if calibration is not None and found.estimate is not None:
        e = found.estimate
        calibration_out = CalibrationOut(
            method=calibration.method,
            pairs=calibration.pairs,
            intercept=calibration.fit.intercept if calibration.fit else None,
            slope=calibration.fit.slope if calibration.fit else None,
            usable=calibration.usable,
            reason=calibration.reason,
            people_thumbs_up_rate=found.thumbs_up_rate,
            fitted_on=found.fitted_on,
            estimate=EstimateOut(
                rate=e.rate, low=e.low, high=e.high, judged_calls=e.judged_calls, interval=INTERVAL, reason=e.reason
            ),
        )
    return AgreementOut(
        evaluator_id=evaluator_id,
        against=found.against,
        since=since,
        until=until,
        n=a.n,
        statistic=a.statistic,
        value=a.value,
        low=a.low,
        high=a.high,
        interval=a.interval,
        reading=reading(a.value, a.statistic),
        calibration=calibration_out,
    )


def read_agreement(
    evaluations: Evaluations,
    project: str,
    evaluator_id: str,
    against: Against | None,
    since: datetime | None,
    until: datetime | None,
    model: str | None = None,
) -> AgreementOut:
    """The agreement the route returns (404 unknown evaluator, 422 an output type ``against`` cannot
    compare); the dashboard's evaluator page shows the same."""
    since, end = storable_range(since, until or datetime.now(UTC), names=("from", "to"))  # 'to' defaults to now
    assert end is not None
    until, since = end, since or end - CALIBRATION_PERIOD
    evaluator = found_evaluator(evaluations, project, evaluator_id)
    if against is None:
        against = "label" if evaluator.output_kind == "label" else "thumbs"
    if evaluator.output_kind == "label" and against != "label":
        raise unprocessable(
            ["query", "against"],
            f"evaluator {evaluator_id!r} gives labels, which cannot be compared with {against}; use against=label",
        )
    if evaluator.output_kind == "score" and against == "label":
        raise unprocessable(
            ["query", "against"],
            f"evaluator {evaluator_id!r} gives scores, which cannot be compared with labels; "
            "use against=thumbs or against=rating",
        )
    found = judge_agreement(evaluations.storage, project, evaluator_id, against, since, until, model)
    return _agreement_out(evaluator_id, since, until, found)


def _out(event_id: str, outcome: queue.Outcome, updated_at: datetime | None = None) -> EvaluationOut:
    return EvaluationOut(
        event_id=event_id,
        status=outcome.status,
        score=outcome.score,
        label=outcome.label,
        explanation=outcome.explanation,
        error=outcome.error,
        judge_model=outcome.judge_model,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        cost_usd=outcome.cost_usd,
        latency_ms=outcome.latency_ms,
        attempts=outcome.attempts,
        updated_at=updated_at,
    )


async def _vet(evaluations: Evaluations, evaluator: Evaluator) -> None:
    """422 for a judge endpoint the SSRF rules refuse (checked again before every call)."""
    if evaluator.judge is None:
        return
    try:
        await asyncio.to_thread(vet_endpoint, evaluator.judge.base_url, evaluations.judge.allowed)
    except UnresolvableTargetError:
        return  # DNS may be down for a moment; every call checks again
    except UnsafeTargetError as exc:
        raise unprocessable(["body", "judge", "base_url"], str(exc), "unsafe_target") from exc


def found_evaluator(evaluations: Evaluations, project: str, evaluator_id: str) -> Evaluator:
    """The project's evaluator of that id; 404 when it has none."""
    evaluator = evaluations.store.get(project, evaluator_id)
    if evaluator is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluator {evaluator_id!r} in this project")
    return evaluator


async def _evaluator(evaluator_id: EvaluatorIdPath, project: ProjectDep, evaluations: EvaluationsDep) -> Evaluator:
    """The path's evaluator, for a key that may read (404 when the project has none of that id)."""
    return await asyncio.to_thread(found_evaluator, evaluations, project, evaluator_id)


async def _managed_evaluator(
    evaluator_id: EvaluatorIdPath, project: ManagedProjectDep, evaluations: EvaluationsDep
) -> Evaluator:
    """The path's evaluator, for a key that may change the project (403 before 404)."""
    return await asyncio.to_thread(found_evaluator, evaluations, project, evaluator_id)


EvaluatorDep = Annotated[Evaluator, Depends(_evaluator)]
ManagedEvaluatorDep = Annotated[Evaluator, Depends(_managed_evaluator)]


@router.post(
    "",
    response_model=Evaluator,
    status_code=status.HTTP_201_CREATED,
    responses=_CONFLICT,
    summary="Create an evaluator",
)
async def create_evaluator(body: EvaluatorCreate, project: ManagedProjectDep, evaluations: EvaluationsDep) -> Evaluator:
    probe = Evaluator(
        **body.model_dump(exclude={"evaluator_id"}), evaluator_id=body.evaluator_id or "new", project=project
    )
    await _vet(evaluations, probe)
    try:
        return await asyncio.to_thread(evaluations.store.create, project, body)
    except EvaluatorExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("", response_model=list[Evaluator], summary="The project's evaluators")
async def list_evaluators(project: ProjectDep, evaluations: EvaluationsDep) -> list[Evaluator]:
    return await asyncio.to_thread(evaluations.store.list, project)


@router.get("/{evaluator_id}", response_model=Evaluator, responses=responses(404), summary="One evaluator")
async def get_evaluator(evaluator: EvaluatorDep) -> Evaluator:
    return evaluator


@router.patch(
    "/{evaluator_id}",
    response_model=Evaluator,
    responses=responses(404),
    summary="Change some fields of an evaluator; the result is validated as a whole",
)
async def update_evaluator(
    current: ManagedEvaluatorDep, body: EvaluatorUpdate, project: ManagedProjectDep, evaluations: EvaluationsDep
) -> Evaluator:
    # null leaves a field unchanged, except those whose null means "none" (budgets, the kind's own fields)
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name in _NULLABLE
    }
    evaluator_id = current.evaluator_id
    try:
        evaluator = await asyncio.to_thread(evaluations.store.update, project, evaluator_id, changes)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_problems(exc, ["body"])) from exc
    if evaluator is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluator {evaluator_id!r} in this project")
    if "judge" in changes:
        await _vet(evaluations, evaluator)
    return evaluator


@router.delete(
    "/{evaluator_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(404), summary="Delete an evaluator"
)
async def delete_evaluator(
    evaluator_id: EvaluatorIdPath, project: ManagedProjectDep, evaluations: EvaluationsDep
) -> Response:
    if not await asyncio.to_thread(evaluations.store.delete, project, evaluator_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evaluator {evaluator_id!r} in this project")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{evaluator_id}/preview",
    response_model=list[EvaluationOut],
    responses=responses(404),
    summary="Try the evaluator on the newest matching calls; nothing is stored",
)
async def preview_evaluator(
    evaluator: ManagedEvaluatorDep, evaluations: EvaluationsDep, limit: Annotated[int, Query(ge=1, le=20)] = 5
) -> list[EvaluationOut]:
    return [_out(call.event_id, outcome) for call, outcome in await evaluations.preview(evaluator, limit)]


@router.get(
    "/{evaluator_id}/evaluations",
    response_model=EvaluationsOut,
    responses=responses(404),
    summary="The evaluator's newest evaluations and today's budget use",
)
async def evaluator_evaluations(
    evaluator: EvaluatorDep,
    project: ProjectDep,
    evaluations: EvaluationsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EvaluationsOut:
    evaluator_id = evaluator.evaluator_id

    def read() -> EvaluationsOut:
        rows = queue.of_evaluator(evaluations.storage, project, evaluator_id, limit)
        usage = evaluations.budgets.usage(evaluator)
        return EvaluationsOut(
            evaluator_id=evaluator_id,
            counts=queue.counts(evaluations.storage, project, evaluator_id),
            calls_today=usage.calls,
            cost_today_usd=usage.cost_usd,
            over_budget=evaluations.budgets.over(evaluator),
            items=[_out(row.sampled.event_id, row.outcome, row.updated_at) for row in rows],
        )

    return await asyncio.to_thread(read)


@router.get(
    "/{evaluator_id}/agreement",
    response_model=AgreementOut,
    responses=responses(404),
    summary="How far the evaluator agrees with people over a period, and its calibration to thumbs",
)
async def evaluator_agreement(
    evaluator_id: EvaluatorIdPath,
    project: ProjectDep,
    evaluations: EvaluationsDep,
    since: Annotated[
        IsoDatetime | None, Query(alias="from", description="calls from, inclusive, ISO 8601 (default: 7 days before)")
    ] = None,
    until: Annotated[IsoDatetime | None, Query(alias="to", description="calls until, exclusive (default: now)")] = None,
    against: Annotated[
        Against | None,
        Query(description="people's feedback kind to compare with (default: thumbs; label judges: label)"),
    ] = None,
    model: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="only calls of this model (default: every model)"),
    ] = None,
) -> AgreementOut:
    return await asyncio.to_thread(read_agreement, evaluations, project, evaluator_id, against, since, until, model)


@router.post(
    "/{evaluator_id}/backfill",
    response_model=BackfillOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(404),
    summary="Evaluate past calls of a time range (queued; resumable; within the daily budget)",
)
async def backfill_evaluator(
    evaluator: ManagedEvaluatorDep, body: BackfillRequest, evaluations: EvaluationsDep
) -> BackfillOut:
    since, until = storable_range(body.since, body.until, "body")
    assert since is not None
    assert until is not None
    if evaluator.filters.on_feedback:
        raise unprocessable(
            ["body"], "a backfill of an evaluator filtered on feedback (thumbs_down, corrected) is not supported"
        )
    backfill_id, queued = await asyncio.to_thread(evaluations.backfill, evaluator, since, until, body.max_calls)
    evaluations.wake()
    return BackfillOut(
        backfill_id=backfill_id, queued=queued, counts={"pending": queued} if queued else {}, finished=not queued
    )


@router.get(
    "/{evaluator_id}/backfills/{backfill_id}",
    response_model=BackfillOut,
    responses=responses(404),
    summary="A backfill's progress (an id that queued nothing, or an unknown one, shows no rows)",
)
async def backfill_progress(
    evaluator: EvaluatorDep,
    backfill_id: Annotated[str, Path(min_length=1, max_length=64)],
    evaluations: EvaluationsDep,
) -> BackfillOut:
    counts = await asyncio.to_thread(
        queue.counts, evaluations.storage, evaluator.project, evaluator.evaluator_id, backfill_id
    )
    return BackfillOut(
        backfill_id=backfill_id, queued=sum(counts.values()), counts=counts, finished=not counts.get("pending")
    )
