"""Evaluators: the list (with a banner for spent budgets and an enable/disable switch per row), create and
edit forms, and each evaluator's page with its agreement with people (and calibration to thumbs) over the
last 7, 30 or 90 days (``?days=``), of every model or one (``?model=``), its newest scores and a preview
on recent calls (nothing stored).

Forms go through the API's own route functions, so the dashboard refuses exactly what the API does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import ValidationError

from api.routes.evaluators import (
    create_evaluator,
    delete_evaluator,
    found_evaluator,
    preview_evaluator,
    read_agreement,
    update_evaluator,
)
from api.ui.web import Ui, UiDep, UiManageDep, UiRoute, first, quote_path, redirect
from schemas.evaluators import BUILTIN_TEMPLATES, CodeCheck, Evaluator, EvaluatorCreate, EvaluatorUpdate
from schemas.problems import problem_line, validation_problems
from streams.evals import Evaluations
from streams.evals.templates import BUILTINS
from streams.storage import evaluations as queue
from streams.storage.inferences import model_names

router = APIRouter(prefix="/ui", route_class=UiRoute)
EvaluatorIdPath = Annotated[str, Path(min_length=1, max_length=64)]
FIELDS = (
    "evaluator_id", "name", "kind", "scope", "sampling_rate", "daily_budget_usd", "daily_budget_calls", "template",
    "prompt_template", "base_url", "model", "api_key_env", "check", "pattern", "function", "timeout_seconds",
)  # fmt: skip
SIMPLE_CHECKS = ("json_valid", "refusal", "regex_present", "regex_absent")
PERIODS = (7, 30, 90)  # days of agreement the evaluator page offers
DaysQuery = Annotated[str, Query(max_length=8, description="days of agreement shown: 7, 30 or 90")]
ModelQuery = Annotated[str, Query(max_length=200, description="agreement on this model's calls ('' every model)")]


def _days(text: str) -> int:
    """The page's agreement period; a 422 naming the choices for anything else."""
    if text.strip() not in {str(days) for days in PERIODS}:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"days: one of {', '.join(map(str, PERIODS))} (days of agreement)"
        )
    return int(text)


def _evaluations(ui: Ui) -> Evaluations:
    if ui.runtime.evaluations is None:
        raise HTTPException(503, "this process does not serve evaluators")
    return ui.runtime.evaluations


def _messages(problems: list[dict[str, Any]] | str) -> list[str]:
    if isinstance(problems, str):
        return [problems]
    return [
        problem_line([p for p in problem.get("loc", []) if p != "body"], str(problem.get("msg", "")))
        for problem in problems
    ]


def _body(form: dict[str, str]) -> dict[str, Any]:
    """The JSON body the API would get from this form ('' = the field's default)."""
    body: dict[str, Any] = {"name": form["name"], "kind": form["kind"], "scope": form["scope"] or "*"}
    for name in ("evaluator_id", "sampling_rate", "daily_budget_usd", "daily_budget_calls"):
        if form[name].strip():
            body[name] = form[name].strip()
    if form["kind"] == "llm_judge":
        judge = {"base_url": form["base_url"].strip(), "model": form["model"].strip()}
        if form["api_key_env"].strip():
            judge["api_key_env"] = form["api_key_env"].strip()
        body["judge"] = judge
        if form["template"]:
            body["template"] = form["template"]
        else:
            body["prompt_template"] = form["prompt_template"]
    else:
        code: dict[str, Any] = {"check": form["check"]}
        if form["check"] in ("regex_present", "regex_absent"):
            code["pattern"] = form["pattern"]
        body["code"] = code
    return body


def _form_of(evaluator: Evaluator) -> dict[str, str]:
    """The edit form pre-filled with the stored evaluator."""

    def text(value: object) -> str:
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    judge, code = evaluator.judge, evaluator.code
    return {
        "evaluator_id": evaluator.evaluator_id,
        "name": evaluator.name,
        "kind": evaluator.kind,
        "scope": evaluator.scope,
        "sampling_rate": text(evaluator.sampling_rate),
        "daily_budget_usd": text(evaluator.daily_budget_usd),
        "daily_budget_calls": text(evaluator.daily_budget_calls),
        "template": evaluator.template or "",
        "prompt_template": evaluator.prompt_template or "",
        "base_url": judge.base_url if judge else "",
        "model": judge.model if judge else "",
        "api_key_env": (judge.api_key_env or "") if judge else "",
        "check": code.check if code else "json_valid",
        "pattern": (code.pattern or "") if code else "",
        "function": evaluator.function or "",
        "timeout_seconds": text(evaluator.timeout_seconds),
    }


def _changes(form: dict[str, str], current: Evaluator) -> dict[str, Any]:
    """The PATCH body of an edit form: the fields it shows; what it does not show (the judge's timeout
    and prices, a check's other settings, filters, output) stays as stored."""
    body: dict[str, Any] = {"name": form["name"], "scope": form["scope"] or "*"}
    if form["sampling_rate"].strip():
        body["sampling_rate"] = form["sampling_rate"].strip()
    for name in ("daily_budget_usd", "daily_budget_calls"):  # empty: no limit
        body[name] = form[name].strip() or None
    if current.kind == "llm_judge" and current.judge is not None:
        judge = current.judge.model_dump(mode="json")
        judge.update(base_url=form["base_url"].strip(), model=form["model"].strip())
        judge["api_key_env"] = form["api_key_env"].strip()  # empty: no key
        body["judge"] = judge
        own = not form["template"]
        body["template"] = None if own else form["template"]
        body["prompt_template"] = form["prompt_template"] if own else None
    elif current.kind == "code" and current.code is not None:
        code = current.code.model_dump(mode="json", exclude_none=True)
        if form["check"] != current.code.check:
            code = {"check": form["check"]}
        if form["check"] in ("regex_present", "regex_absent"):
            code["pattern"] = form["pattern"]
        body["code"] = code
    elif current.kind == "python":
        body["function"] = form["function"].strip()
        body["timeout_seconds"] = form["timeout_seconds"].strip() or None
    return body


async def _form_page(
    ui: Ui, form: dict[str, str], errors: list[str], status_code: int = 200, *, editing: Evaluator | None = None
) -> Response:
    models = await asyncio.to_thread(model_names, ui.runtime.storage, ui.project)
    if editing is not None and editing.scope not in ("*", *models):
        models = [editing.scope, *models]  # a model with no calls yet keeps its scope
    return ui.render(
        "evaluator_form.html",
        status_code=status_code,
        form=form,
        errors=errors,
        editing=editing,
        scopes=["*", *models],
        templates=[(name, BUILTINS[name].meaning) for name in BUILTIN_TEMPLATES],
        checks=[
            c
            for c in get_args(CodeCheck)
            if c in SIMPLE_CHECKS or (editing and editing.code and editing.code.check == c)
        ],
    )


@router.get("/evaluators")
async def evaluator_list(ui: UiDep) -> Response:
    evaluations = _evaluations(ui)

    def read() -> list[dict[str, Any]]:
        rows = []
        for evaluator in evaluations.store.list(ui.project):
            usage = evaluations.budgets.usage(evaluator)
            rows.append(
                {
                    "evaluator": evaluator,
                    "counts": queue.counts(evaluations.storage, ui.project, evaluator.evaluator_id),
                    "usage": usage,
                    "over_budget": evaluations.budgets.over(evaluator),
                }
            )
        return rows

    return ui.render("evaluators.html", rows=await asyncio.to_thread(read))


@router.get("/evaluators/new")
async def new_evaluator(ui: UiDep) -> Response:
    form = dict.fromkeys(FIELDS, "")
    form.update(kind="llm_judge", scope="*", sampling_rate="0.1", template="answer_relevance", check="json_valid")
    return await _form_page(ui, form, [])


@router.post("/evaluators/new")
async def create(ui: UiManageDep) -> Response:
    fields = await ui.form()
    form = {name: first(fields, name) for name in FIELDS}
    evaluations = _evaluations(ui)
    try:
        spec = EvaluatorCreate.model_validate(_body(form), strict=False)  # a form's numbers are text
        created = await create_evaluator(spec, ui.project, evaluations)
    except ValidationError as exc:
        return await _form_page(ui, form, _messages(validation_problems(exc, ["body"])), 422)
    except HTTPException as exc:
        return await _form_page(ui, form, _messages(exc.detail), exc.status_code)
    return redirect(f"/ui/evaluators/{quote_path(created.evaluator_id)}")


async def _detail(
    ui: Ui, evaluator_id: str, preview: list[Any] | None = None, days: int = PERIODS[0], model: str = ""
) -> Response:
    evaluations = _evaluations(ui)
    evaluator = await asyncio.to_thread(found_evaluator, evaluations, ui.project, evaluator_id)  # 404 first
    models = await asyncio.to_thread(model_names, evaluations.storage, ui.project)
    if model and model not in models:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"model: no calls of model {model!r} in this project"
        )
    rows = await asyncio.to_thread(queue.of_evaluator, evaluations.storage, ui.project, evaluator_id, 50)
    counts = await asyncio.to_thread(queue.counts, evaluations.storage, ui.project, evaluator_id)
    over = await asyncio.to_thread(evaluations.budgets.over, evaluator)
    since = datetime.now(UTC) - timedelta(days=days)
    agreement = await asyncio.to_thread(
        read_agreement, evaluations, ui.project, evaluator_id, None, since, None, model or None
    )
    return ui.render(
        "evaluator.html",
        evaluator=evaluator,
        rows=rows,
        counts=counts,
        over_budget=over,
        preview=preview,
        agreement=agreement,
        days=days,
        periods=PERIODS,
        model=model,
        models=models,
    )


@router.get("/evaluators/{evaluator_id}")
async def evaluator_page(
    evaluator_id: EvaluatorIdPath, ui: UiDep, days: DaysQuery = "7", model: ModelQuery = ""
) -> Response:
    return await _detail(ui, evaluator_id, days=_days(days), model=model)


@router.post("/evaluators/{evaluator_id}/preview")
async def preview(evaluator_id: EvaluatorIdPath, ui: UiManageDep) -> Response:
    await ui.form()
    evaluations = _evaluations(ui)
    evaluator = await asyncio.to_thread(found_evaluator, evaluations, ui.project, evaluator_id)
    results = await preview_evaluator(evaluator, evaluations, 5)
    return await _detail(ui, evaluator_id, preview=results)


async def _stored(ui: Ui, evaluator_id: str) -> Evaluator:
    return await asyncio.to_thread(found_evaluator, _evaluations(ui), ui.project, evaluator_id)


@router.get("/evaluators/{evaluator_id}/edit")
async def edit_evaluator(evaluator_id: EvaluatorIdPath, ui: UiDep) -> Response:
    evaluator = await _stored(ui, evaluator_id)
    return await _form_page(ui, _form_of(evaluator), [], editing=evaluator)


@router.post("/evaluators/{evaluator_id}/edit")
async def save(evaluator_id: EvaluatorIdPath, ui: UiManageDep) -> Response:
    fields = await ui.form()
    current = await _stored(ui, evaluator_id)
    form = {**_form_of(current), **{name: first(fields, name) for name in FIELDS if name in fields}}
    form.update(evaluator_id=current.evaluator_id, kind=current.kind)  # neither changes
    try:
        changes = EvaluatorUpdate.model_validate(_changes(form, current), strict=False)  # a form's numbers are text
        await update_evaluator(current, changes, ui.project, _evaluations(ui))
    except ValidationError as exc:
        return await _form_page(ui, form, _messages(validation_problems(exc, ["body"])), 422, editing=current)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return await _form_page(ui, form, _messages(exc.detail), exc.status_code, editing=current)
    return redirect(f"/ui/evaluators/{quote_path(evaluator_id)}")


@router.post("/evaluators/{evaluator_id}/enabled")
async def switch(evaluator_id: EvaluatorIdPath, ui: UiManageDep) -> Response:
    """Enable or disable (``enabled`` = true / false); back to the list or the evaluator's page."""
    fields = await ui.form()
    enabled = first(fields, "enabled")
    if enabled not in ("true", "false"):
        raise HTTPException(422, "enabled must be 'true' or 'false'")
    current = await _stored(ui, evaluator_id)
    await update_evaluator(current, EvaluatorUpdate(enabled=enabled == "true"), ui.project, _evaluations(ui))
    page = f"/ui/evaluators/{quote_path(evaluator_id)}"
    return redirect("/ui/evaluators" if first(fields, "back") == "list" else page)


@router.post("/evaluators/{evaluator_id}/delete")
async def remove(evaluator_id: EvaluatorIdPath, ui: UiManageDep) -> Response:
    await ui.form()
    await delete_evaluator(evaluator_id, ui.project, _evaluations(ui))
    return redirect("/ui/evaluators")
