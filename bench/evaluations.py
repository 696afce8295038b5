"""Benchmark: online evaluations — judge throughput, evaluation lag, and what sampling costs ingest.

What is measured
    The real runtime (``streams.runtime.start_runtime``: embedded runner, chDB, the evaluation worker)
    runs in this process; a deterministic OpenAI-compatible judge (an asyncio server on 127.0.0.1 in a
    process of its own) answers every request after ``--judge-ms`` (300 ms). Events go in
    through the runtime's publisher (the path an HTTP 202 takes, without HTTP), in batches of 500.

    * throughput: ``--judged`` calls (3,000) sampled at 100 % by an LLM-judge evaluator
      (``LOOPWATCH_EVALUATOR_CONCURRENCY`` = ``--concurrency``, 128); timed from the first publish until
      every evaluation is done (read back from the ``evaluations`` table, each exactly once: the judge's
      request count must equal the calls). Target: >= 200 evaluations/s sustained.
    * lag, under the sustained rate the throughput target implies (not a backlog burst): calls published
      at ``--lag-rate`` (200/s, in 10 batches a second) for ``--lag-seconds`` (20 s), every one sampled;
      per evaluation, ``updated_at`` (marked done, after its score was stored) minus the call's
      ``ingested_at`` (stored, when its sender was acknowledged), so the time to be sampled counts;
      p50/p95. Target: p95 <= 2 s + the judge's latency. (Before, the lag was read off the 3,000-call
      burst of the throughput run: that measures how long a backlog takes to drain, not the lag.)
    * ingest overhead: ``--ingest`` events (100,000) published into a fresh database without any
      evaluator, then into another with a 10 % sampled judge evaluator (whose worker runs meanwhile);
      median of ``--runs`` runs each, alternating. Target: within 5 % of ingest without. Also printed:
      this process's CPU during each ingest, the judge process's (separate, as a remote judge is), the
      evaluations finished during ingest (they hold while bulk writes go on) and how long after the last
      acknowledgement every sampled call was evaluated (the backlog worked off). ``--parts`` picks measures.

Run from the repository root::

    .venv/bin/python bench/evaluations.py            # the figures of the README
    .venv/bin/python bench/evaluations.py --quick    # smaller counts, same shape
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import REPO, console, fmt_runs, median, percentile, process_cpu_seconds, rate, verdict

from loopwatch._logs import configure_logging
from schemas.evaluators import EvaluatorCreate
from schemas.records import InferenceRecord
from schemas.settings import Settings
from streams.evals.sampling import sample_point
from streams.runtime import Runtime, start_runtime
from streams.storage import as_utc
from streams.storage import evaluations as queue

assert REPO
BATCH = 500
SENDERS = 16


def settings_for(data_dir: Path, concurrency: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}",
        log_level="warning",
        evaluator_allowed_hosts="127.0.0.1",
        evaluator_concurrency=concurrency,
        evaluator_breaker_failures=1000,
    )


def calls(count: int, prefix: str) -> list[InferenceRecord]:
    now = datetime.now(UTC)
    return [
        InferenceRecord(
            event_id=f"{prefix}-{i}",
            project="bench",
            model="chat",
            prompt=f"question {i} about the invoice of order {i * 7}",
            response=f"answer {i}: the invoice is attached",
            timestamp=now,
            latency_ms=120.0 + i % 50,
            input_tokens=40,
            output_tokens=12,
        )
        for i in range(count)
    ]


def judge_spec(judge: RemoteJudge, rate_: float) -> EvaluatorCreate:
    return EvaluatorCreate.model_validate(
        {
            "evaluator_id": "relevance",
            "name": "Relevance",
            "kind": "llm_judge",
            "template": "answer_relevance",
            "sampling_rate": rate_,
            "judge": {"base_url": judge.base_url, "model": "judge", "timeout_seconds": 30},
        }
    )


async def publish_all(runtime: Runtime, events: list[InferenceRecord]) -> float:
    """Publish in batches of ``BATCH`` from ``SENDERS`` concurrent senders (as concurrent HTTP requests
    would: each waits for the group commit that writes its batch); returns the seconds until all are written."""
    publisher = runtime.publisher
    assert publisher is not None
    batches = [events[start : start + BATCH] for start in range(0, len(events), BATCH)]

    async def sender(mine: list[list[InferenceRecord]]) -> None:
        for batch in mine:
            await publisher.publish_inferences(batch)

    started = time.perf_counter()
    await asyncio.gather(*(sender(batches[i::SENDERS]) for i in range(SENDERS)))
    return time.perf_counter() - started


async def throughput(data_dir: Path, judge: RemoteJudge, count: int, concurrency: int) -> None:
    runtime = await start_runtime(settings_for(data_dir, concurrency))
    try:
        assert runtime.evaluations is not None
        runtime.evaluations.store.create("bench", judge_spec(judge, 1.0))
        started = time.perf_counter()
        await publish_all(runtime, calls(count, "judged"))
        while True:
            counts = await asyncio.to_thread(queue.counts, runtime.storage, "bench", "relevance")
            if counts.get("done", 0) + counts.get("error", 0) >= count:
                break
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        rows = await asyncio.to_thread(queue.of_evaluator, runtime.storage, "bench", "relevance", count + 10)
        lags = [(row.updated_at - row.sampled.enqueued_at).total_seconds() for row in rows]
        once = len({row.sampled.event_id for row in rows}) == len(rows) == count
        per_second = rate(count, seconds)
        judge_s = judge.delay
        console.print(f"[bold]judge throughput[/bold]: {count:,} calls judged in {seconds:.1f} s = {per_second:,.0f}/s "
                      f"(judge {judge_s * 1000:.0f} ms, concurrency {concurrency}); statuses {counts}; "
                      f"each call evaluated once: {once}")  # fmt: skip
        console.print(f"  target >= 200/s: {verdict(per_second >= 200)}")
        p50, p95 = percentile(lags, 50), percentile(lags, 95)
        console.print(
            f"  (the burst's own lag, sampled → score stored, a backlog draining: p50 {p50:.2f} s, p95 {p95:.2f} s)"
        )
    finally:
        await runtime.stop()


async def lag(data_dir: Path, judge: RemoteJudge, per_second: int, seconds: int, concurrency: int) -> None:
    """Calls at a steady ``per_second`` for ``seconds``; lag = score stored − call stored, per call."""
    runtime = await start_runtime(settings_for(data_dir, concurrency))
    try:
        assert runtime.evaluations is not None and runtime.publisher is not None
        runtime.evaluations.store.create("bench", judge_spec(judge, 1.0))
        events = calls(per_second * seconds, "steady")
        step = max(1, per_second // 10)
        started = time.perf_counter()
        sends = []  # each batch is sent on time, as independent HTTP senders would, not after the last ack
        for index, start in enumerate(range(0, len(events), step)):
            await asyncio.sleep(max(0.0, started + index * step / per_second - time.perf_counter()))
            sends.append(asyncio.create_task(runtime.publisher.publish_inferences(events[start : start + step])))
        await asyncio.gather(*sends)
        sent_in = time.perf_counter() - started
        while True:
            counts = await asyncio.to_thread(queue.counts, runtime.storage, "bench", "relevance")
            if counts.get("done", 0) + counts.get("error", 0) >= len(events):
                break
            await asyncio.sleep(0.1)
        rows = await asyncio.to_thread(queue.of_evaluator, runtime.storage, "bench", "relevance", len(events) + 10)
        stored = dict(
            runtime.storage.query(
                f"SELECT event_id, max(ingested_at) FROM {runtime.storage.database}.inferences "
                "WHERE project = 'bench' GROUP BY event_id"
            ).result_rows
        )
        lags = [(row.updated_at - as_utc(stored[row.sampled.event_id])).total_seconds() for row in rows]
        p50, p95 = percentile(lags, 50), percentile(lags, 95)
        console.print(f"[bold]evaluation lag[/bold] at a steady {per_second}/s for {seconds} s (sent in {sent_in:.1f} s; "
                      f"call stored → score stored): p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(lags):.2f} s")  # fmt: skip
        console.print(f"  target p95 <= 2 s + judge ({2 + judge.delay:.1f} s): {verdict(p95 <= 2 + judge.delay)}")
    finally:
        await runtime.stop()


@dataclass(frozen=True)
class IngestRun:
    rate: float  # events/s, first publish to last acknowledgement
    cpu: float  # this process's CPU seconds over the same span
    judge_cpu: float  # the judge process's CPU seconds over the same span
    judged_during: int  # evaluations finished before the last acknowledgement
    caught_up: float  # seconds from the last acknowledgement until every sampled call was evaluated


async def ingest_once(data_dir: Path, judge: RemoteJudge, count: int, with_evaluator: bool) -> IngestRun:
    runtime = await start_runtime(settings_for(data_dir, 128))
    try:
        assert runtime.evaluations is not None
        if with_evaluator:
            runtime.evaluations.store.create("bench", judge_spec(judge, 0.1))
        prefix = f"ingest-{uuid.uuid4().hex[:6]}"
        events = calls(count, prefix)
        cpu, judge_cpu = process_cpu_seconds(), judge.cpu_seconds()
        seconds = await publish_all(runtime, events)
        cpu, judge_cpu = process_cpu_seconds() - cpu, judge.cpu_seconds() - judge_cpu
        stored = runtime.storage.scalar(f"SELECT count() FROM {runtime.storage.database}.inferences FINAL")
        assert stored == count, (stored, count)
        judged_during, caught_up = 0, 0.0
        if with_evaluator:
            acked = time.perf_counter()
            sampled = sum(1 for event in events if sample_point("relevance", event.event_id) < 0.1)
            counts = await asyncio.to_thread(queue.counts, runtime.storage, "bench", "relevance")
            judged_during = counts.get("done", 0) + counts.get("error", 0)
            while counts.get("done", 0) + counts.get("error", 0) < sampled:
                await asyncio.sleep(0.2)
                counts = await asyncio.to_thread(queue.counts, runtime.storage, "bench", "relevance")
            caught_up = time.perf_counter() - acked
        return IngestRun(rate(count, seconds), cpu, judge_cpu, judged_during, caught_up)
    finally:
        await runtime.stop(close_storage=False)
        runtime.storage.command(f"DROP DATABASE IF EXISTS {runtime.storage.database}")
        runtime.storage.close()


async def ingest(data_dir: Path, judge: RemoteJudge, count: int, runs: int) -> None:
    without: list[IngestRun] = []
    with_: list[IngestRun] = []
    for _ in range(runs):
        without.append(await ingest_once(data_dir, judge, count, False))
        with_.append(await ingest_once(data_dir, judge, count, True))
    base, sampled = median(r.rate for r in without), median(r.rate for r in with_)
    change = (sampled - base) / base * 100
    console.print(f"[bold]ingest[/bold] {count:,} events: without evaluators {base:,.0f}/s, "
                  f"with a 10 % judge evaluator {sampled:,.0f}/s ({change:+.1f} %); runs "
                  f"{[round(r.rate) for r in without]} / {[round(r.rate) for r in with_]}")  # fmt: skip
    console.print(f"  CPU of this process during ingest: {fmt_runs([r.cpu for r in without], '{:.2f}')} s without, "
                  f"{fmt_runs([r.cpu for r in with_], '{:.2f}')} s with; the judge process "
                  f"(a separate process: remote in a deployment): {fmt_runs([r.judge_cpu for r in with_], '{:.2f}')} s")  # fmt: skip
    console.print(f"  evaluations finished during ingest: {[r.judged_during for r in with_]}; every sampled call "
                  f"evaluated {fmt_runs([r.caught_up for r in with_], '{:.1f}')} s after the last acknowledgement")  # fmt: skip
    console.print(f"  target within 5 %: {verdict(change >= -5)}")


class RemoteJudge:
    """The test judge in a process of its own (spawned), so it does not share this process's GIL."""

    def __init__(self, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._urls: Any = context.Queue()
        self._process = context.Process(target=_serve_judge, args=(delay, self._urls), daemon=True)
        self._process.start()
        self.base_url: str = self._urls.get(timeout=60)
        self.delay = delay

    def cpu_seconds(self) -> float:
        """User + system CPU of the judge process so far."""
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(10)


def _serve_judge(delay: float, urls: Any) -> None:
    """An asyncio (uvicorn) judge answering like ``tests/evals/judge_server.py`` after ``delay`` seconds:
    a thread per request would cost more CPU than the evaluations measured."""
    import orjson
    import uvicorn

    from loopwatch._server import free_port

    reply = orjson.dumps(
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": '{"explanation": "ok", "score": 0.9}'}}
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        }
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(delay)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    port = free_port()
    urls.put(f"http://127.0.0.1:{port}/v1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judged", type=int, default=3000)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--judge-ms", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--lag-rate", type=int, default=200)
    parser.add_argument("--lag-seconds", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="throughput,lag,ingest", help="comma-separated: which measures to run")
    args = parser.parse_args()
    if args.quick:
        args.judged, args.ingest, args.runs, args.lag_seconds = 600, 20_000, 1, 5
    with tempfile.TemporaryDirectory(prefix="bench-evals-") as tmp:
        configure_logging(settings_for(Path(tmp), args.concurrency))  # JSON at warning, as a server logs
    judge = RemoteJudge(args.judge_ms / 1000)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-evals-") as tmp:
            parts = set(args.parts.split(","))
            if "throughput" in parts:
                asyncio.run(throughput(Path(tmp), judge, args.judged, args.concurrency))
            if "lag" in parts:
                asyncio.run(lag(Path(tmp), judge, args.lag_rate, args.lag_seconds, args.concurrency))
            if "ingest" in parts:
                asyncio.run(ingest(Path(tmp), judge, args.ingest, args.runs))
    finally:
        judge.stop()


if __name__ == "__main__":
    main()
