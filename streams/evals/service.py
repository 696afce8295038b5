"""Online evaluations in a running process: a sampler behind a durable mark, a worker that drains the queue.

::

    flush writes calls ─▶ (wakes) Sampler: reads calls stored since its mark ─▶ evaluations (pending)
                                                                                     │
    feedback (source "evaluator") ◀── publish ◀── judge / check / function ◀── worker ┘ then marked done

* **Sampling** is off the ingest path: the flush only wakes the sampler, which reads the calls stored
  since its mark (``streams.storage.sampler_marks``), queues those its evaluators take and then moves
  the mark. A queue that cannot be written holds up evaluations, never acknowledgements; a process
  killed before the mark moved reads the same calls again, so no sampled call is lost. Evaluators whose
  filters need feedback (thumbs-down, corrected) read the feedback stored since their own mark.
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
import threading
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
from streams.evals.functions import FunctionRunner, FunctionTimeoutError
from streams.evals.judge import AllowedHosts, BreakerOpenError, JudgeClient, JudgeError
from streams.evals.sampling import matches, sampled
from streams.evals.store import EvaluatorStore
from streams.evals.templates import output_of, render, template_text
from streams.pricing import Pricer
from streams.storage import Claims, Storage, generation, sampler_marks
from streams.storage import evaluations as queue
from streams.storage import feedback as feedback_table
from streams.storage import inferences as calls
from streams.storage.evaluations import Outcome, Sampled

log = structlog.get_logger(__name__)

PublishFeedback = Callable[[Sequence[FeedbackRecord]], Awaitable[None]]
CLAIM_KIND = "evaluation"
MISSING_CALL_GRACE = timedelta(minutes=10)  # a sampled call not readable after this long is skipped
LOCAL_OVERLAP = timedelta(seconds=2)  # one writer (embedded): rows become visible in ingestion order
SHARED_OVERLAP = timedelta(seconds=30)  # several writers (Kafka workers): an insert may land this late
BATCH = 256  # rows started together (one read of their calls, one write of their results)
READ_AHEAD = 1024  # pending rows one read of the queue takes, started batch by batch before the next read
MAX_IN_FLIGHT = 512  # rows being evaluated at once per process (judge requests are capped per endpoint)
SAMPLER_GAP = 0.25  # seconds between sampling passes at least: under heavy ingest, one read covers many flushes
# Ingest first. A write of at least BULK_EVENTS events (calls and people's feedback; the evaluators'
# own scores do not count) means events arrive faster than the writer's linger collects them (a
# backfill, a burst: steady traffic of a few hundred calls a second flushes far fewer). While one is
# written and until BULK_SECONDS after it (or twice the time between the burst's last two bulk writes,
# when they are at most BULK_PACE_MAX apart: a loaded host spends longer between them), evaluations
# hold: the worker starts no row (those in flight finish) and the sampler reads nothing; the backlog is
# worked off when the burst ends. (Judge calls, queue reads and score writes share the process's cores and GIL with
# ingest: at full concurrency a 10 % sampled judge took half of a burst's throughput, and 8 rows at
# once still a fifth.) A burst that goes on for BULK_MAX_HOLD seconds is the load, not a burst (a
# long backfill, or traffic that writes a thousand calls at a time all day): evaluations stop holding,
# as a hold then would leave a backlog that never shrinks; the sampler reads every BULK_SAMPLER_GAP
# seconds while it lasts.
BULK_EVENTS = 1000
BULK_SECONDS = 1.0
BULK_PACE_MAX = 5.0
BULK_MAX_HOLD = 30.0
BULK_SAMPLER_GAP = 2.0
SAMPLER_MAX_BACKOFF = 30.0  # seconds between sampling passes while storage keeps failing


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
    """Queues the stored calls each evaluator takes, reading behind a durable mark per source.

    A pass reads the calls (and the thumbs-downs and corrections, for evaluators of those) ingested at or
    after its mark less ``overlap`` (rows of concurrent writers become visible out of order), queues the
    sampled ones it has not queued yet, and only then moves the mark: a process killed in between reads
    them again, and queueing twice is harmless (``streams.storage.evaluations.enqueue``). An evaluator
    takes the calls ingested after it was created; one this sampler sees for the first time (created in
    another process, say) is looked for from its creation, when that is at most ``RECENT`` ago.
    """

    PAGE = 5000
    RECENT = timedelta(hours=1)

    def __init__(self, storage: Storage, store: EvaluatorStore, budgets: Budgets, *, overlap: timedelta) -> None:
        self._storage = storage
        self._store = store
        self._budgets = budgets
        self._overlap = overlap
        self._marks: dict[str, datetime | None] = {}
        self._queued: dict[str, dict[tuple[str, str, str], datetime]] = {"inferences": {}, "feedback": {}}
        self._known: set[tuple[str, str]] = set()
        self._bulk_lock = threading.Lock()

    notify: Callable[[], None] | None = None  # wakes the sampling loop (set by ``Evaluations.start``)
    _bulk_writes = 0  # bulk writes under way
    _bulk_until = float("-inf")  # when the last bulk write ended, plus ``BULK_SECONDS``
    _bulk_since = float("-inf")  # when the current burst began (its first bulk write)
    _bulk_started = float("-inf")  # when the last bulk write began
    _bulk_ended = float("-inf")  # when the last bulk write ended
    _bulk_pace = 0.0  # seconds between the starts of the burst's last two bulk writes
    _flushes = 0  # flushes the pipeline reported (a pass after none has no newer call to look for)
    _flushes_sampled = -1  # ``_flushes`` when the last pass began

    def writing(self, events: int) -> bool:
        """The pipeline starts a write of ``events`` calls and people's feedback (any thread): one of
        ``BULK_EVENTS`` or more is bulk ingest (see there), until ``BULK_SECONDS`` after ``written``.
        Returns whether it is (the caller then calls ``written`` once the write ends, done or failed)."""
        if events < BULK_EVENTS:
            return False
        with self._bulk_lock:
            now = time.monotonic()
            # the burst goes on: a write under way, or the last one ended BULK_PACE_MAX ago at most (writes
            # that each take longer than that on a loaded host are still one burst)
            if self._bulk_writes > 0 or now - self._bulk_ended <= BULK_PACE_MAX:
                self._bulk_pace = now - self._bulk_started
            else:
                self._bulk_since, self._bulk_pace = now, 0.0
            self._bulk_started = now
            self._bulk_writes += 1
        return True

    def written(self) -> None:
        """A bulk write ended: evaluations hold ``BULK_SECONDS`` more, or twice the burst's pace between
        writes when that is longer (the next write of the burst is on its way)."""
        with self._bulk_lock:
            self._bulk_ended = time.monotonic()
            self._bulk_until = self._bulk_ended + max(BULK_SECONDS, 2 * self._bulk_pace)
            self._bulk_writes -= 1

    def stored(self) -> None:
        """The pipeline stored events (called from its flush, any thread): sample them soon."""
        self._flushes += 1
        if self.notify is not None:
            self.notify()

    def under_bulk(self) -> bool:
        """Whether a bulk write is under way or ended within the last ``BULK_SECONDS``: evaluations give way."""
        return self._bulk_writes > 0 or time.monotonic() < self._bulk_until

    def holding(self) -> float:
        """Seconds evaluations hold for at least (0: they do not): the rest of a bulk phase, unless the
        burst has gone on for ``BULK_MAX_HOLD`` (then it is the load, see there)."""
        now = time.monotonic()
        if not self.under_bulk() or now - self._bulk_since >= BULK_MAX_HOLD:
            return 0.0
        return BULK_SECONDS if self._bulk_writes > 0 else max(0.0, self._bulk_until - now)

    def sample_once(self) -> int:
        """One pass over both sources; returns how many rows it queued. A failure (the queue's table
        unusable, say) raises and leaves the marks where they were: the next pass reads the rows again."""
        evaluators = [e for e in self._store.enabled() if e.sampling_rate > 0 and not self._budgets.over(e)]
        if not evaluators:
            return 0
        flushes = self._flushes
        flushed = flushes != self._flushes_sampled
        new = [e for e in evaluators if (e.project, e.evaluator_id) not in self._known]
        on_calls = [e for e in evaluators if not e.filters.on_feedback]
        on_feedback = [e for e in evaluators if e.filters.on_feedback]
        queued = self._pass("inferences", on_calls, new, flushed) + self._pass("feedback", on_feedback, new, False)
        self._known = {(e.project, e.evaluator_id) for e in evaluators}
        self._flushes_sampled = flushes
        return queued

    def _since(self, source: str, evaluators: Sequence[Evaluator], new: Sequence[Evaluator]) -> datetime:
        if source not in self._marks:
            self._marks[source] = sampler_marks.read(self._storage, source)
        mark = self._marks[source]
        earliest = min(e.created_at for e in evaluators)
        if mark is None:
            return earliest
        since = max(earliest, mark - self._overlap)
        fresh = [e.created_at for e in new if e in evaluators and e.created_at >= mark - self.RECENT]
        return min([since, *fresh])

    def _pass(self, source: str, evaluators: Sequence[Evaluator], new: Sequence[Evaluator], flushed: bool) -> int:
        if not evaluators:
            return 0
        since = self._since(source, evaluators, new)
        # read before the pages: a call stored after this moment is read by them or, if stamped before it
        # and visible only later, by the overlap of the next pass. Only after a flush (``flushed``): with
        # none since the last pass, this process stored no newer call to move the mark to (another
        # process's calls move it with this one's next flush; until then it only rests on the sampled ones)
        stored = calls.newest_ingested(self._storage, since) if flushed else None
        queued, seen = self._queued[source], 0
        after: tuple[datetime, str, str] | None = None
        newest = self._marks[source]
        while True:
            picked: dict[tuple[str, str, str], Sampled] = {}
            now = datetime.now(UTC)
            if source == "inferences":
                shares = [calls.Share(e.project, e.evaluator_id, e.sampling_rate) for e in evaluators]
                calls_read = calls.ingested_since(self._storage, since, after, self.PAGE, shares)
                for call in calls_read:
                    for evaluator in evaluators:
                        key = (call.project, evaluator.evaluator_id, call.key.event_id)
                        if key in queued or not _takes(evaluator, call.project, call.key.event_id, call.ingested_at):
                            continue
                        if matches(evaluator, call.key.model, call.key.model_version, call.key.status, call.key.tags):
                            picked[key] = Sampled(*key, now)
                rows = [(c.ingested_at, c.project, c.key.event_id) for c in calls_read]
                stamps = {(c.project, c.key.event_id): c.ingested_at for c in calls_read}
            else:
                items = feedback_table.ingested_since(self._storage, since, after, self.PAGE)
                for item in items:
                    for evaluator in evaluators:
                        key = (item.project, evaluator.evaluator_id, item.inference_id)
                        if key in queued or not _takes(evaluator, item.project, item.inference_id, item.ingested_at):
                            continue
                        filters = evaluator.filters
                        if (filters.thumbs_down and item.kind == "thumbs") or (
                            filters.corrected and item.kind == "correction"
                        ):
                            picked[key] = Sampled(*key, now)
                rows = [(f.ingested_at, f.project, f.feedback_id) for f in items]
                stamps = {(f.project, f.inference_id): f.ingested_at for f in items}
            queue.enqueue(self._storage, list(picked.values()))
            for key in picked:
                queued[key] = stamps[(key[0], key[2])]
            seen += len(picked)
            if rows:
                newest = max(newest or rows[-1][0], rows[-1][0])
            if len(rows) < self.PAGE:
                break
            after = rows[-1]
        if stored is not None:  # only sampled calls were read: the mark moves past the others too
            newest = max(newest, stored) if newest is not None else stored
        if newest is not None and newest != self._marks[source]:  # once per pass, after every page was queued
            sampler_marks.move(self._storage, source, newest)
            self._marks[source] = newest
        if newest is not None:  # what can still be read again: the overlap behind the mark
            horizon = newest - self._overlap
            self._queued[source] = {key: at for key, at in queued.items() if at >= horizon}
        if seen:
            metrics.SAMPLED.inc(seen)
        return seen


def _takes(evaluator: Evaluator, project: str, event_id: str, ingested_at: datetime) -> bool:
    """The evaluator's project, a call stored since it exists, and in its share."""
    return project == evaluator.project and ingested_at >= evaluator.created_at and sampled(evaluator, event_id)


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
        overlap = SHARED_OVERLAP if claims else LOCAL_OVERLAP
        self.sampler = Sampler(storage, self.store, self.budgets, overlap=overlap)
        self.judge = JudgeClient(
            AllowedHosts(settings.evaluator_allowed_hosts),
            max_attempts=settings.evaluator_max_attempts,
            backoff_seconds=settings.evaluator_backoff_seconds,
            concurrency=settings.evaluator_concurrency,
            breaker_threshold=settings.evaluator_breaker_failures,
            breaker_seconds=settings.evaluator_breaker_seconds,
        )
        self.functions = FunctionRunner()  # kind python: users' functions, in subprocesses
        self.pricer = Pricer(settings)
        self.claims = Claims(storage) if claims else None
        self.publish: PublishFeedback | None = None
        self._task: asyncio.Task[None] | None = None
        self._sampling: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stored = asyncio.Event()  # set when the pipeline stored events: the sampler reads them
        self._in_flight: set[tuple[str, str, str]] = set()  # rows being evaluated by this process
        self._not_ready: dict[tuple[str, str, str], float] = {}  # rows to leave alone until then (monotonic)
        self._rows_lock = asyncio.Lock()
        self._ready: list[Sampled] = []  # pending rows read ahead, oldest first, not started yet
        self._stopping = False
        self._stopped = asyncio.Event()  # set by ``stop``: ends a hold at once
        self.poll_seconds = settings.evaluator_poll_seconds

    # ------------------------------------------------------------------ lifecycle

    async def start(self, publish: PublishFeedback | None) -> None:
        """Load the evaluators file; with a ``publish`` (where scores go), start the worker."""
        if self.settings.evaluators_file is not None:
            await asyncio.to_thread(self.store.load_file, self.settings.evaluators_file)
        self.publish = publish
        loop = asyncio.get_running_loop()

        def notify() -> None:
            loop.call_soon_threadsafe(self._stored.set)

        self.sampler.notify = notify
        if publish is not None:
            self._sampling = asyncio.create_task(self._sample(), name="loopwatch-evaluation-sampler")
            self._task = asyncio.create_task(self._run(), name="loopwatch-evaluations")

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        self._stored.set()
        for task in (self._sampling, self._task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.judge.aclose()
        await self.functions.aclose()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ the sampler

    async def _sample(self) -> None:
        """Sample what was stored, woken by the pipeline's flushes (else every ``poll_seconds``). Ingest
        never waits for this: a queue that cannot be written holds up evaluations, not acknowledgements."""
        failures = 0
        while not self._stopping:
            held = self.sampler.holding()
            if held > 0:  # ingest first: read what the burst stored once it is over
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=held)
                continue
            self._stored.clear()
            try:
                if await asyncio.to_thread(self.sampler.sample_once):
                    self._wake.set()
                failures = 0
            except Exception as exc:  # storage: the marks did not move, the next pass reads the rows again
                failures += 1
                metrics.SAMPLING_FAILURES.inc()
                log.warning("evaluations.sampling_failed", error_type=type(exc).__name__, failures=failures)
                await asyncio.sleep(min(SAMPLER_MAX_BACKOFF, self.poll_seconds * 2 ** min(failures, 6)))
                continue
            gap = BULK_SAMPLER_GAP if self.sampler.under_bulk() else SAMPLER_GAP
            await asyncio.sleep(min(gap, self.poll_seconds))  # a pass per gap at most, not per flush
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stored.wait(), timeout=self.poll_seconds)

    # ------------------------------------------------------------------ the worker

    async def _run(self) -> None:
        """Keep up to ``MAX_IN_FLIGHT`` rows being evaluated: a new batch starts while earlier ones wait on
        the judge (one slow batch no longer holds up the next), each batch publishing and finishing its
        rows on its own."""
        batches: set[asyncio.Task[None]] = set()
        while not self._stopping:
            self._wake.clear()  # a wake from here on (calls sampled, a batch done) ends the wait below at once
            started = 0
            if len(self._in_flight) < self._max_in_flight():
                try:
                    started = await self._start_batch(batches)
                except Exception:
                    log.exception("evaluations.batch_failed")
            if started or self._stopping:
                continue
            held = self.sampler.holding()  # rows wait for the burst's end: look again then, not a poll later
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(held, self.poll_seconds) or self.poll_seconds)
        if batches:
            await asyncio.gather(*batches, return_exceptions=True)

    def _max_in_flight(self) -> int:
        """``MAX_IN_FLIGHT``; none while evaluations hold for a burst (``Sampler.holding``)."""
        return 0 if self.sampler.holding() > 0 else MAX_IN_FLIGHT

    async def _start_batch(self, batches: set[asyncio.Task[None]]) -> int:
        """Read pending rows not already being evaluated (nor just found not ready) and start them."""
        room = min(BATCH, self._max_in_flight() - len(self._in_flight))
        if room <= 0:
            return 0
        now = time.monotonic()
        self._not_ready = {key: until for key, until in self._not_ready.items() if until > now}
        async with self._rows_lock:  # no batch finishes between this read and the filter below
            if not self._ready:  # one read of the queue (a FINAL scan) serves many batches
                rows = await asyncio.to_thread(
                    queue.pending, self.storage, READ_AHEAD + len(self._in_flight) + len(self._not_ready)
                )
                self._ready = [
                    item for item in rows if _key(item) not in self._in_flight and _key(item) not in self._not_ready
                ]
            batch, self._ready = self._ready[:room], self._ready[room:]
            self._in_flight.update(_key(item) for item in batch)
        if not batch:
            return 0
        task = asyncio.create_task(self._evaluate_batch(batch))
        batches.add(task)
        task.add_done_callback(batches.discard)
        return len(batch)

    async def _evaluate_batch(self, batch: list[Sampled]) -> None:
        try:
            await self.drain_once(batch)
        except Exception:
            log.exception("evaluations.batch_failed")
        finally:
            self._in_flight.difference_update(_key(item) for item in batch)
            self._wake.set()

    async def drain_once(self, batch: list[Sampled]) -> int:
        """Evaluate ``batch`` (pending rows); returns how many were finished. Rows that are not ready
        (the call not readable yet, a breaker open) stay pending and are not read again for a poll."""
        mine = await asyncio.to_thread(self._claim, batch) if self.claims is not None else batch
        inputs = await asyncio.to_thread(self._inputs, mine)
        results = await asyncio.gather(*(self._evaluate(item, *inputs[i]) for i, item in enumerate(mine)))
        done = [(item, result) for item, result in zip(mine, results, strict=True) if result is not None]
        later = time.monotonic() + self.poll_seconds
        for item, result in zip(mine, results, strict=True):
            if result is None:
                self._not_ready[_key(item)] = later
        if len(mine) < len(batch):  # claimed by another process: look again after a poll (it may die)
            taken = {_key(item) for item in mine}
            self._not_ready.update((_key(item), later) for item in batch if _key(item) not in taken)
        scores = [result.feedback for _, result in done if result.feedback is not None]
        if scores:
            assert self.publish is not None
            await self.publish(scores)  # stored (or in Kafka) before the rows say done
        async with self._rows_lock:
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
        (log.debug if outcome.status == "done" else log.info)(  # one per evaluation: successes only at debug
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
        try:
            answer = await self.functions.call(evaluator.function or "", call, evaluator.timeout_seconds)
        except FunctionTimeoutError as exc:
            return Outcome("error", error=str(exc), latency_ms=_ms(started))
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


def _key(item: Sampled) -> tuple[str, str, str]:
    return (item.project, item.evaluator_id, item.event_id)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
