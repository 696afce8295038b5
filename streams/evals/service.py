"""Online evaluations in a running process: sampling at write time, a worker that drains the queue.

::

    flush writes calls ─▶ Sampler ─▶ evaluations (pending) ─▶ EvaluationWorker ─▶ judge / check / function
                                                                     │
                       feedback (source "evaluator") ◀── publish ◀───┘ then the row is marked done

* **Sampling** runs in the pipeline's flush, after the calls are stored and before their writers are
  acknowledged: if queueing fails, the flush fails and the events come again (HTTP resend, Kafka
  redelivery), so no sampled call is lost. Evaluators whose filters need feedback (thumbs-down,
  corrected) sample when that feedback is written.
* **The worker** is off the ingest path: it reads pending rows, evaluates them with bounded concurrency
  per judge endpoint, publishes the scores as feedback through the process's publisher (so quality
  statistics, monitors and exports see them like any feedback), then marks the rows done. The feedback
  id is derived from (evaluator, event): a row evaluated twice (a crash between the two writes) replaces
  its score, it never adds one. With several processes sharing ClickHouse (Kafka mode), each row is
  claimed first (``streams.storage.claims``); a dead claimant's rows are taken over.
* **Budgets**: an evaluator's evaluations and judge spend per UTC day; once spent, sampling stops (and
  queued rows are skipped) until the next day, shown by a metric and on the dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from schemas.evaluators import Evaluator
from schemas.records import FeedbackRecord, InferenceRecord
from schemas.settings import Settings
from streams.evals import metrics
from streams.evals.call import Call
from streams.evals.checks import run_check
from streams.evals.judge import AllowedHosts, BreakerOpenError, JudgeClient, JudgeError
from streams.evals.sampling import matches, sampled
from streams.evals.store import EvaluatorStore
from streams.evals.templates import output_of, render, template_text
from streams.pricing import Pricer
from streams.storage import Claims, Storage, generation
from streams.storage import evaluations as queue
from streams.storage import feedback as feedback_table
from streams.storage import inferences as calls
from streams.storage.evaluations import Outcome, Sampled

log = structlog.get_logger(__name__)

PublishFeedback = Callable[[Sequence[FeedbackRecord]], Awaitable[None]]
CLAIM_KIND = "evaluation"
MISSING_CALL_GRACE = timedelta(minutes=10)  # a sampled call not readable after this long is skipped


def feedback_id(evaluator_id: str, event_id: str) -> str:
    """The id of an evaluator's score of a call: the same on every run, so re-running replaces it."""
    return "eval-" + hashlib.blake2b(f"{evaluator_id}\x1f{event_id}".encode(), digest_size=12).hexdigest()


def _today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class Budgets:
    """Each evaluator's use of its daily budget: read from storage every ``refresh`` seconds (other
    processes' work) plus what this process did since."""

    def __init__(self, storage: Storage, *, refresh: float = 5.0) -> None:
        self._storage = storage
        self._refresh = refresh
        self._read_at = -1e18
        self._day = _today()
        self._used: dict[tuple[str, str], queue.Usage] = {}
        self._over: set[tuple[str, str]] = set()

    def _current(self) -> None:
        if time.monotonic() - self._read_at < self._refresh and _today() == self._day:
            return
        self._day = _today()
        self._used = queue.usage_since(self._storage, self._day)
        self._read_at = time.monotonic()

    def add(self, evaluator: Evaluator, cost_usd: float) -> None:
        key = (evaluator.project, evaluator.evaluator_id)
        used = self._used.get(key, queue.Usage(0, 0.0))
        self._used[key] = queue.Usage(used.calls + 1, used.cost_usd + cost_usd)

    def over(self, evaluator: Evaluator) -> bool:
        """Whether the evaluator's budget for today is spent (and the metric says so)."""
        if evaluator.daily_budget_usd is None and evaluator.daily_budget_calls is None:
            return False
        self._current()
        key = (evaluator.project, evaluator.evaluator_id)
        used = self._used.get(key, queue.Usage(0, 0.0))
        spent = (evaluator.daily_budget_calls is not None and used.calls >= evaluator.daily_budget_calls) or (
            evaluator.daily_budget_usd is not None and used.cost_usd >= evaluator.daily_budget_usd
        )
        if spent != (key in self._over):
            (self._over.add if spent else self._over.discard)(key)
            metrics.OVER_BUDGET.labels(*key).set(1 if spent else 0)
            if spent:
                log.warning(
                    "evaluator.over_budget", project=key[0], evaluator=key[1], calls=used.calls, cost_usd=used.cost_usd
                )
        return spent

    def usage(self, evaluator: Evaluator) -> queue.Usage:
        self._current()
        return self._used.get((evaluator.project, evaluator.evaluator_id), queue.Usage(0, 0.0))


class Sampler:
    """Puts the written calls each evaluator samples into the queue (called from the pipeline's flush)."""

    def __init__(self, storage: Storage, store: EvaluatorStore, budgets: Budgets) -> None:
        self._storage = storage
        self._store = store
        self._budgets = budgets
        self.notify: Callable[[], None] | None = None  # wakes the worker (called from the flush's thread)

    def sample(self, inferences: Sequence[InferenceRecord], feedback: Sequence[FeedbackRecord]) -> int:
        if not inferences and not feedback:
            return 0
        evaluators = self._store.enabled()
        if not evaluators:
            return 0
        now = datetime.now(UTC)
        picked: dict[tuple[str, str, str], Sampled] = {}
        for evaluator in evaluators:
            if evaluator.sampling_rate <= 0 or self._budgets.over(evaluator):
                continue
            if evaluator.filters.on_feedback:
                for item in feedback:
                    if item.project != evaluator.project or item.source == "evaluator":
                        continue
                    if _wanted(evaluator, item) and sampled(evaluator, item.inference_id):
                        key = (item.project, evaluator.evaluator_id, item.inference_id)
                        picked[key] = Sampled(*key, now)
                continue
            for call in inferences:
                if call.project != evaluator.project or not sampled(evaluator, call.event_id):
                    continue
                if matches(evaluator, call.model, call.model_version or "", call.status, call.tags):
                    key = (call.project, evaluator.evaluator_id, call.event_id)
                    picked[key] = Sampled(*key, now)
        queue.enqueue(self._storage, list(picked.values()))
        metrics.SAMPLED.inc(len(picked))
        if picked and self.notify is not None:
            self.notify()
        return len(picked)


def _wanted(evaluator: Evaluator, item: FeedbackRecord) -> bool:
    filters = evaluator.filters
    thumbs_down = item.kind == "thumbs" and (item.numeric_value or 0) < 0
    return (filters.thumbs_down and thumbs_down) or (filters.corrected and item.kind == "correction")


def _call(stored: calls.StoredInference, reference: str) -> Call:
    context = stored.tags.get("context") or stored.features.get("context") or ""
    return Call(
        event_id=stored.event_id,
        project=stored.project,
        model=stored.model,
        model_version=stored.model_version,
        timestamp=stored.timestamp,
        status=stored.status,
        prompt=stored.prompt,
        response=stored.response,
        latency_ms=stored.latency_ms,
        cost_usd=stored.cost_usd,
        tags=stored.tags,
        context=str(context),
        reference=reference,
    )


@dataclass(frozen=True, slots=True)
class Result:
    """One evaluation's outcome and, when it produced one, the feedback to store."""

    outcome: Outcome
    feedback: FeedbackRecord | None = None


class Evaluations:
    """The process's evaluation machinery: store, sampler, budgets, judge client and the worker."""

    def __init__(self, storage: Storage, settings: Settings, *, claims: bool) -> None:
        self.storage = storage
        self.settings = settings
        self.store = EvaluatorStore(storage)
        self.budgets = Budgets(storage)
        self.sampler = Sampler(storage, self.store, self.budgets)
        self.judge = JudgeClient(
            AllowedHosts(settings.evaluator_allowed_hosts),
            max_attempts=settings.evaluator_max_attempts,
            backoff_seconds=settings.evaluator_backoff_seconds,
            concurrency=settings.evaluator_concurrency,
            breaker_threshold=settings.evaluator_breaker_failures,
            breaker_seconds=settings.evaluator_breaker_seconds,
        )
        self.pricer = Pricer(settings)
        self.claims = Claims(storage) if claims else None
        self.publish: PublishFeedback | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.poll_seconds = settings.evaluator_poll_seconds

    # ------------------------------------------------------------------ lifecycle

    async def start(self, publish: PublishFeedback | None) -> None:
        """Load the evaluators file; with a ``publish`` (where scores go), start the worker."""
        if self.settings.evaluators_file is not None:
            await asyncio.to_thread(self.store.load_file, self.settings.evaluators_file)
        self.publish = publish
        loop = asyncio.get_running_loop()

        def notify() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.sampler.notify = notify
        if publish is not None:
            self._task = asyncio.create_task(self._run(), name="loopwatch-evaluations")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.judge.aclose()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ the worker

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()  # a wake from here on (calls sampled meanwhile) ends the wait below at once
            try:
                worked = await self.drain_once()
            except Exception:
                log.exception("evaluations.batch_failed")
                worked = 0
            if worked or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def drain_once(self, limit: int = 256) -> int:
        """Evaluate one batch of pending rows; returns how many were finished."""
        batch = await asyncio.to_thread(queue.pending, self.storage, limit)
        if not batch:
            return 0
        if self.claims is not None:
            batch = await asyncio.to_thread(self._claim, batch)
        inputs = await asyncio.to_thread(self._inputs, batch)
        results = await asyncio.gather(*(self._evaluate(item, *inputs[i]) for i, item in enumerate(batch)))
        done = [(item, result) for item, result in zip(batch, results, strict=True) if result is not None]
        scores = [result.feedback for _, result in done if result.feedback is not None]
        if scores:
            assert self.publish is not None
            await self.publish(scores)  # stored (or in Kafka) before the rows say done
        await asyncio.to_thread(self._finish, done)
        return len(done)

    def _inputs(self, batch: Sequence[Sampled]) -> list[tuple[Evaluator | None, calls.StoredInference | None, str]]:
        """Per row: its evaluator (None: deleted or disabled), its call (None: not readable) and reference."""
        evaluators = {(e.project, e.evaluator_id): e for e in self.store.enabled()}
        stored: dict[str, dict[str, calls.StoredInference]] = {}
        refs: dict[str, dict[str, str]] = {}
        for project in {item.project for item in batch}:
            ids = sorted({item.event_id for item in batch if item.project == project})
            stored[project] = calls.inferences_by_id(self.storage, project, ids)
            refs[project] = feedback_table.references(self.storage, project, ids)
        return [
            (
                evaluators.get((item.project, item.evaluator_id)),
                stored[item.project].get(item.event_id),
                refs[item.project].get(item.event_id, ""),
            )
            for item in batch
        ]

    def _finish(self, done: Sequence[tuple[Sampled, Result]]) -> None:
        queue.finish(self.storage, [(item, result.outcome) for item, result in done])
        for _, result in done:
            metrics.EVALUATIONS.labels(result.outcome.status).inc()
            metrics.JUDGE_COST.inc(result.outcome.cost_usd)

    def _claim(self, batch: Sequence[Sampled]) -> list[Sampled]:
        """The rows this process may evaluate: claimed now or before, or taken over from a dead owner."""
        assert self.claims is not None
        mine: list[Sampled] = []
        by_project: dict[str, dict[str, Sampled]] = {}
        for item in batch:
            by_project.setdefault(item.project, {})[f"{item.evaluator_id}:{item.event_id}"] = item
        for project, keyed in by_project.items():
            won = self.claims.claim(project, CLAIM_KIND, list(keyed))
            lost = [key for key in keyed if key not in won]
            for prefix, holder in self.claims.holders(project, CLAIM_KIND, lost).items():
                if holder.owner == self.claims.owner:
                    won.add(prefix)
                    continue
                alive = self.claims.alive(holder.owner)
                stale = datetime.now(UTC) - holder.claimed_at > timedelta(seconds=self.settings.evaluator_lease_seconds)
                if alive is False or (alive is None and stale):
                    key = generation(prefix, holder.generations)
                    if key in self.claims.claim(project, CLAIM_KIND, [key]):
                        log.info("evaluations.taken_over", project=project, key=prefix, previous=holder.owner)
                        won.add(prefix)
            mine += [item for key, item in keyed.items() if key in won]
        return mine

    async def _evaluate(
        self, item: Sampled, evaluator: Evaluator | None, stored: calls.StoredInference | None, reference: str
    ) -> Result | None:
        """Evaluate one pending row; None leaves it pending (its call is not readable yet, breaker open)."""
        if evaluator is None:
            return Result(Outcome("skipped", error="the evaluator was deleted or disabled"))
        if self.budgets.over(evaluator):
            return Result(Outcome("skipped", error="the evaluator's daily budget is spent"))
        if stored is None:
            if datetime.now(UTC) - item.enqueued_at > MISSING_CALL_GRACE:
                return Result(Outcome("skipped", error="the call is not stored"))
            return None
        if evaluator.filters.on_feedback and not matches(
            evaluator, stored.model, stored.model_version, stored.status, stored.tags
        ):
            return Result(Outcome("skipped", error="the call does not match the evaluator's scope and filters"))
        try:
            outcome = await self.run(evaluator, _call(stored, reference))
        except BreakerOpenError:
            return None
        if outcome.status == "done" or outcome.cost_usd:
            self.budgets.add(evaluator, outcome.cost_usd)
        log.info(
            "evaluation.finished",
            project=item.project,
            evaluator=item.evaluator_id,
            event_id=item.event_id,
            status=outcome.status,
            attempts=outcome.attempts,
            latency_ms=outcome.latency_ms,
            error=outcome.error or None,
        )
        if outcome.status != "done":
            return Result(outcome)
        return Result(outcome, self.feedback(evaluator, stored.event_id, stored.timestamp, outcome))

    def feedback(self, evaluator: Evaluator, event_id: str, at: datetime, outcome: Outcome) -> FeedbackRecord:
        """The score as feedback: ``name`` = evaluator id, ``source`` = evaluator, explanation as text.
        Stamped with the call's time, so re-running writes the very same row (same partition)."""
        label = evaluator.output_kind == "label"
        return FeedbackRecord(
            feedback_id=feedback_id(evaluator.evaluator_id, event_id),
            project=evaluator.project,
            inference_id=event_id,
            timestamp=at,
            kind="label" if label else "score",
            value=outcome.label if label else outcome.score,
            name=evaluator.evaluator_id,
            text=outcome.explanation[:2000] or None,
            source="evaluator",
        )

    # ------------------------------------------------------------------ one evaluation

    async def run(self, evaluator: Evaluator, call: Call) -> Outcome:
        """Evaluate ``call``; errors become an ``error`` outcome (never a score). ``BreakerOpenError`` passes."""
        started = time.perf_counter()
        if evaluator.kind == "code":
            assert evaluator.code is not None
            result = run_check(call, evaluator.code)
            return Outcome("done", score=result.score, explanation=result.explanation, latency_ms=_ms(started))
        if evaluator.kind == "python":
            return await self._python(evaluator, call, started)
        assert evaluator.judge is not None
        output = output_of(evaluator)
        prompt = render(template_text(evaluator), call)
        try:
            verdict = await self.judge.judge(evaluator.judge, prompt, output)
        except JudgeError as exc:
            return Outcome(
                "error",
                judge_model=evaluator.judge.model,
                error=str(exc)[:1000],
                latency_ms=_ms(started),
                attempts=exc.attempts,
            )
        metrics.JUDGE_RETRIES.inc(verdict.attempts - 1)
        return Outcome(
            "done",
            score=verdict.score,
            label=verdict.label,
            explanation=verdict.explanation,
            judge_model=evaluator.judge.model,
            input_tokens=verdict.input_tokens,
            output_tokens=verdict.output_tokens,
            cost_usd=self.judge_cost(evaluator, verdict.input_tokens, verdict.output_tokens),
            latency_ms=verdict.latency_ms,
            attempts=verdict.attempts,
        )

    def judge_cost(self, evaluator: Evaluator, input_tokens: int, output_tokens: int) -> float:
        """USD of the judge's tokens: the evaluator's own prices, else the known price of its model."""
        judge = evaluator.judge
        assert judge is not None
        if judge.input_per_mtok is not None or judge.output_per_mtok is not None:
            return ((judge.input_per_mtok or 0) * input_tokens + (judge.output_per_mtok or 0) * output_tokens) / 1e6
        record = InferenceRecord(model=judge.model, input_tokens=input_tokens, output_tokens=output_tokens)
        self.pricer.price([record])
        return record.cost_usd or 0.0

    async def _python(self, evaluator: Evaluator, call: Call, started: float) -> Outcome:
        module_name, _, name = (evaluator.function or "").partition(":")
        try:
            function = getattr(importlib.import_module(module_name), name)
            answer = await asyncio.wait_for(asyncio.to_thread(function, call), timeout=evaluator.timeout_seconds)
        except TimeoutError:
            return Outcome("error", error=f"the function took longer than {evaluator.timeout_seconds:g} s")
        except Exception as exc:  # the user's code: any error is that evaluation's error
            return Outcome("error", error=f"{type(exc).__name__}: {str(exc)[:500]}", latency_ms=_ms(started))
        explanation = ""
        if isinstance(answer, dict):
            explanation = str(answer.get("explanation", ""))
            answer = answer.get("label", answer.get("score"))
        if evaluator.output_kind == "label" and isinstance(answer, str):
            return Outcome("done", label=answer, explanation=explanation, latency_ms=_ms(started))
        if isinstance(answer, (bool, int, float)):
            return Outcome("done", score=float(answer), explanation=explanation, latency_ms=_ms(started))
        return Outcome("error", error=f"the function returned {type(answer).__name__}, not a number, bool or label")

    # ------------------------------------------------------------------ backfills

    def backfill(self, evaluator: Evaluator, since: datetime, until: datetime, limit: int) -> tuple[str, int]:
        """Queue the past calls of ``[since, until)`` the evaluator takes (scope, filters, sampling rate);
        returns the backfill's id and how many were queued. Calls it already evaluated keep their result.

        The queue is the same durable one live sampling fills: a restart resumes it, and the daily budget
        applies (once spent, the rest is skipped, each row saying so)."""
        scope = None if evaluator.scope == "*" else evaluator.scope
        found = calls.calls_between(self.storage, evaluator.project, since, until, scope, limit)
        backfill_id = "bf-" + uuid.uuid4().hex[:12]
        now = datetime.now(UTC)
        picked = [
            Sampled(evaluator.project, evaluator.evaluator_id, call.event_id, now, backfill_id)
            for call in found
            if sampled(evaluator, call.event_id)
            and matches(evaluator, call.model, call.model_version, call.status, call.tags)
        ]
        queue.enqueue(self.storage, picked)
        log.info("evaluations.backfill_queued", project=evaluator.project, evaluator=evaluator.evaluator_id,
                 backfill_id=backfill_id, calls=len(found), queued=len(picked))  # fmt: skip
        return backfill_id, len(picked)

    # ------------------------------------------------------------------ previews

    async def preview(self, evaluator: Evaluator, limit: int = 5) -> list[tuple[Call, Outcome]]:
        """Run ``evaluator`` on its scope's newest calls; nothing is stored."""
        flt = calls.CallFilter(project=evaluator.project, model=None if evaluator.scope == "*" else evaluator.scope)
        page = await asyncio.to_thread(lambda: calls.call_page(self.storage, flt, limit=limit * 4))
        found: list[tuple[Call, Outcome]] = []
        for summary in page.items:
            if not matches(evaluator, summary.model, summary.model_version, summary.status, summary.tags):
                continue
            stored = await asyncio.to_thread(calls.inference, self.storage, evaluator.project, summary.event_id)
            if stored is None:
                continue
            refs = await asyncio.to_thread(
                feedback_table.references, self.storage, evaluator.project, [stored.event_id]
            )
            call = _call(stored, refs.get(stored.event_id, ""))
            try:
                found.append((call, await self.run(evaluator, call)))
            except BreakerOpenError:
                found.append((call, Outcome("error", error="the judge endpoint's circuit breaker is open")))
            if len(found) >= limit:
                break
        return found


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
