"""Benchmark: distributed mode end to end — Emitter → Kafka → ONE KafkaWorker → ClickHouse (chDB).

What is measured
    A real Apache Kafka broker is started with ``scripts/kafka start --port <free port>`` (stopped and
    wiped at the end). Per run (default ``--runs 3``; medians reported, each run's value printed):

    1. produce: N = 300,000 realistic inference events (``loopwatch.demo.traffic.Traffic``, generated
       before the clock starts) are logged with ``loopwatch.Emitter(project, kafka_bootstrap=...,
       topic_prefix=<unique per run>)`` in a tight loop, then ``flush()``. Reported: the emitter's
       produce rate (first ``log_inference`` → every event acknowledged by the broker, ``acks=all``)
       and the rate of the ``log_inference`` calls themselves (validation + enqueue, caller thread).
       ``max_buffer`` is raised to N so the tight loop never drops; ``stats.sent`` must equal N.
    2. consume: one ``streams.kafka.worker.KafkaWorker`` (faust; ``Pipeline`` + ``Storage`` on chDB,
       default settings: 4 partitions, envelopes of 1,000 events, 64 messages per take) runs on an
       asyncio loop thread in this process, as ``tests/streams/conftest.py`` does, with a new consumer
       group and a fresh database. The clock runs until ``count()`` reaches N; then
       ``count() FINAL`` and ``uniqExact(event_id)`` must equal N exactly and ``dead_letters`` be empty.
       Primary figure ("consuming"): N / (time from the first envelope handed to the pipeline — the
       worker's decode step, observed by wrapping ``worker._decode`` in this script — to all N rows
       counted in ClickHouse), i.e. without faust start-up and the consumer-group join, which are
       reported separately; the figure from ``worker.start()`` is printed too.
    3. baseline, side by side: a naive consumer — kafka-python ``KafkaConsumer`` on the same topic with
       its own group, decoding each envelope and doing one ClickHouse insert per event
       (``Storage.insert_json`` with a one-row body; no validation, which only flatters it) into its own
       database, for at most ``--naive-events`` (3,000) events or ``--naive-seconds`` (30 s). Its
       ``count() FINAL`` must equal the number it inserted.

    Event time: ``--event-rate`` events per second of event time (default 1,000/s: 300k events span
    300 s, one default window), so the worker's statistics path runs about as often as it would for a
    real stream of this volume.

Targets (from the issue): >= 30,000 events/s for one worker, and >= 20x the naive consumer.
The broker, the worker and this script share the 2-core machine.

Run from the repository root::

    .venv/bin/python bench/kafka_e2e.py            # full: 300k events, 3 runs
    .venv/bin/python bench/kafka_e2e.py --quick    # smoke: 30k events, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common
import orjson
from _common import (
    console,
    fmt_int,
    fmt_runs,
    median,
    process_cpu_seconds,
    progress,
    rate,
    thread_cpu,
    thread_cpu_delta,
    verdict,
)
from rich.table import Table

from loopwatch import Emitter
from loopwatch._logs import configure_logging
from loopwatch._server import free_port
from loopwatch.demo.traffic import Traffic
from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.admin import ensure_topics
from streams.kafka.worker import KafkaWorker
from streams.pipeline import Pipeline
from streams.storage import Storage

TARGET_WORKER = 30_000
TARGET_RATIO = 20
PROJECT = "bench"
KAFKA = _common.REPO / "scripts" / "kafka"


class LoopThread:
    """An asyncio loop on a background thread (as in tests/streams/conftest.py)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="worker-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class Broker:
    """``scripts/kafka`` on a free port pair (client port, controller port + 1)."""

    def __init__(self) -> None:
        self.port = self._free_pair()
        self.bootstrap = ""

    @staticmethod
    def _free_pair() -> int:
        for _ in range(50):
            port = free_port()
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
        raise RuntimeError("no free port pair")

    def start(self) -> str:
        out = subprocess.run(
            [str(KAFKA), "start", "--port", str(self.port)],  # noqa: S603 - fixed argv
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if out.returncode != 0:
            raise SystemExit(f"scripts/kafka start failed:\n{out.stderr[-2000:]}")
        self.bootstrap = out.stdout.strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        subprocess.run(
            [str(KAFKA), "stop", "--port", str(self.port), "--wipe"],  # noqa: S603 - fixed argv
            capture_output=True,
            check=False,
            timeout=120,
        )


@dataclass
class RunResult:
    produce_seconds: float
    enqueue_seconds: float
    worker_steady: float  # events/s, first envelope decoded → all rows
    worker_total: float  # events/s, start() → all rows
    startup_seconds: float
    naive_events: int
    naive_seconds: float
    worker_cpu_cores: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)

    @property
    def naive_rate(self) -> float:
        return rate(self.naive_events, self.naive_seconds)


def generate(events: int, event_rate: float) -> list[dict[str, Any]]:
    """Keyword arguments for ``Emitter.log_inference``, built before the clock starts."""
    traffic = Traffic(
        PROJECT, seed=7, start=datetime.now(UTC) - timedelta(seconds=events / event_rate), rate_per_second=event_rate
    )
    calls = []
    with progress() as bar:
        task = bar.add_task("generating events (not timed)", total=events)
        for i in range(events):
            item = traffic.inference(i)
            item.pop("project")
            item["timestamp"] = datetime.fromisoformat(item["timestamp"])
            calls.append({key: value for key, value in item.items() if value is not None})
            if i % 10_000 == 0:
                bar.update(task, completed=i)
        bar.update(task, completed=events)
    return calls


def produce(bootstrap: str, prefix: str, calls: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds first call → all acked, seconds spent in the log_inference calls)."""
    emitter = Emitter(PROJECT, kafka_bootstrap=bootstrap, topic_prefix=prefix, max_buffer=len(calls) + 1)
    assert emitter.flush(timeout=30)  # the producer is connected before the clock starts
    with progress() as bar:
        task = bar.add_task("emitter: log_inference + flush", total=len(calls))
        started = time.perf_counter()
        for begin in range(0, len(calls), 5_000):
            for kwargs in calls[begin : begin + 5_000]:
                emitter.log_inference(**kwargs)
            bar.update(task, completed=begin + 5_000)
        enqueued = time.perf_counter()
        flushed = emitter.flush(timeout=600)
        finished = time.perf_counter()
    stats = emitter.stats
    emitter.close()
    if not flushed or stats.sent != len(calls) or stats.dropped or stats.failed or stats.invalid:
        raise SystemExit(f"emitter did not deliver everything: {stats}")
    return finished - started, enqueued - started


def consume_with_worker(settings: Settings, loop: LoopThread, events: int, run: int) -> RunResult:
    storage = Storage(settings)
    storage.migrate()
    db = storage.database
    worker = KafkaWorker(settings, Pipeline(storage, settings), app_id=f"{settings.topic_prefix}-worker-{run}")
    decode = worker._decode
    first_decode: list[float] = []

    def timed_decode(kind: Any, values: Any) -> Any:  # instrumentation only: note when consuming starts
        if not first_decode:
            first_decode.append(time.perf_counter())
        return decode(kind, values)

    worker._decode = timed_decode  # type: ignore[method-assign]
    threads_before, cpu_before = thread_cpu(), process_cpu_seconds()
    with progress() as bar:
        task = bar.add_task("KafkaWorker → chDB", total=events)
        started = time.perf_counter()
        loop.run(worker.start())
        deadline = started + 900
        while True:
            count = int(storage.scalar(f"SELECT count() FROM {db}.inferences"))
            now = time.perf_counter()
            bar.update(task, completed=count)
            if count >= events:
                break
            if now > deadline:
                raise SystemExit(f"worker stalled at {count:,} of {events:,} rows")
            time.sleep(0.05)
        finished = time.perf_counter()
    cpu = process_cpu_seconds() - cpu_before
    threads = thread_cpu_delta(threads_before, thread_cpu())
    loop.run(worker.stop())
    final = int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL"))
    unique = int(storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences"))
    dead = int(storage.scalar(f"SELECT count() FROM {db}.dead_letters"))
    if not final == unique == events or dead:
        raise SystemExit(f"worker read-back mismatch: FINAL={final} unique={unique} dead={dead} expected={events}")
    storage.command(f"DROP DATABASE IF EXISTS {db}")
    first_at = first_decode[0]
    return RunResult(
        produce_seconds=0,
        enqueue_seconds=0,
        worker_steady=rate(events, finished - first_at),
        worker_total=rate(events, finished - started),
        startup_seconds=first_at - started,
        naive_events=0,
        naive_seconds=0,
        worker_cpu_cores=cpu / (finished - started),
        threads=threads,
    )


def consume_naively(settings: Settings, max_events: int, max_seconds: float) -> tuple[int, float]:
    """kafka-python consumer, one ClickHouse insert per event; returns (events inserted, seconds)."""
    from kafka import KafkaConsumer

    storage = Storage(settings)
    storage.migrate()
    db = storage.database
    consumer = KafkaConsumer(
        Topics(settings.topic_prefix).inference,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.topic_prefix}-naive",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    inserted = 0
    started = None
    with progress() as bar:
        task = bar.add_task("naive consumer: one insert per event", total=max_events)
        while inserted < max_events:
            batches = consumer.poll(timeout_ms=1_000)
            for records in batches.values():
                for record in records:
                    for item in orjson.loads(record.value):
                        if started is None:
                            started = time.perf_counter()
                        storage.insert_json("inferences", orjson.dumps(item))
                        inserted += 1
                        bar.advance(task)
                        if inserted >= max_events or time.perf_counter() - started > max_seconds:
                            break
                    else:
                        continue
                    break
                else:
                    continue
                break
            if started is not None and time.perf_counter() - started > max_seconds:
                break
        finished = time.perf_counter()
    consumer.close()
    final = int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL"))
    if final != inserted:
        raise SystemExit(f"naive read-back mismatch: FINAL={final} inserted={inserted}")
    storage.command(f"DROP DATABASE IF EXISTS {db}")
    assert started is not None
    return inserted, finished - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-events", type=int, default=3_000)
    parser.add_argument("--naive-seconds", type=float, default=30.0)
    parser.add_argument("--event-rate", type=float, default=1_000.0, help="events per second of event time")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30k events, 500 naive, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs, args.naive_events, args.naive_seconds = 30_000, 1, 500, 10.0

    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-kafka-"))
    configure_logging(Settings(log_level="warning"))
    for noisy in ("kafka", "aiokafka", "faust", "mode"):  # start-up chatter (coordinator not ready yet, ...)
        logging.getLogger(noisy).setLevel(logging.ERROR)
    console.rule("[bold]loopwatch Kafka end-to-end benchmark (one worker)")
    broker = Broker()
    loop = LoopThread()
    results: list[RunResult] = []
    try:
        with console.status(f"starting the Kafka broker on port {broker.port} (scripts/kafka)"):
            bootstrap = broker.start()
        console.print(f"broker {bootstrap}; {args.events:,} events per run, {args.runs} run(s); data: {data_dir}")
        calls = generate(args.events, args.event_rate)
        for run in range(args.runs):
            prefix = f"bench{uuid.uuid4().hex[:8]}"
            settings = Settings(
                data_dir=data_dir,
                log_level="warning",
                kafka_bootstrap=bootstrap,
                topic_prefix=prefix,
                clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}",
            )
            asyncio.run(ensure_topics(settings))
            console.print(
                f"[bold]run {run + 1}/{args.runs}[/bold] (topics {prefix}.*, {settings.kafka_partitions} partitions)"
            )
            produce_seconds, enqueue_seconds = produce(bootstrap, prefix, calls)
            result = consume_with_worker(settings, loop, args.events, run)
            result.produce_seconds, result.enqueue_seconds = produce_seconds, enqueue_seconds
            naive_settings = settings.model_copy(update={"clickhouse_database": f"bench_naive_{uuid.uuid4().hex[:8]}"})
            result.naive_events, result.naive_seconds = consume_naively(
                naive_settings, args.naive_events, args.naive_seconds
            )
            results.append(result)
            console.print(
                f"  emitter {rate(args.events, produce_seconds):,.0f} ev/s; worker {result.worker_steady:,.0f} ev/s "
                f"(consuming), {result.worker_total:,.0f} ev/s incl. start-up; naive {result.naive_rate:,.0f} ev/s — "
                "read back exact"
            )
    finally:
        loop.close()
        with console.status("stopping and wiping the broker"):
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    worker = median(r.worker_steady for r in results)
    naive = median(r.naive_rate for r in results)
    table = Table(title=f"Kafka end to end, one worker ({args.events:,} events per run; read back exact)")
    for column in ("what", "events", "events/s per run", "median events/s"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row(
        "KafkaWorker → chDB, consuming (first envelope → all rows)",
        fmt_int(args.events),
        fmt_runs([r.worker_steady for r in results]),
        f"[bold]{worker:,.0f}[/bold]",
    )
    table.add_row(
        "KafkaWorker → chDB, worker.start() → all rows",
        fmt_int(args.events),
        fmt_runs([r.worker_total for r in results]),
        f"{median(r.worker_total for r in results):,.0f}",
    )
    table.add_row(
        "baseline: naive consumer, one insert per event",
        fmt_runs([r.naive_events for r in results]),
        fmt_runs([r.naive_rate for r in results]),
        f"[bold]{naive:,.0f}[/bold]",
    )
    table.add_row("ratio worker / naive", "", "", f"[bold]{worker / naive:,.1f}x[/bold]")
    table.add_row(
        "Emitter produce (first log_inference → all acked)",
        fmt_int(args.events),
        fmt_runs([rate(args.events, r.produce_seconds) for r in results]),
        f"[bold]{median(rate(args.events, r.produce_seconds) for r in results):,.0f}[/bold]",
    )
    table.add_row(
        "Emitter log_inference calls (caller thread)",
        fmt_int(args.events),
        fmt_runs([rate(args.events, r.enqueue_seconds) for r in results]),
        f"{median(rate(args.events, r.enqueue_seconds) for r in results):,.0f}",
    )
    table.add_row(f"target: worker >= {TARGET_WORKER:,} events/s", "", "", verdict(worker >= TARGET_WORKER))
    table.add_row(f"target: worker >= {TARGET_RATIO}x naive", "", "", verdict(worker / naive >= TARGET_RATIO))
    console.print(table)

    detail = Table(title="where the time goes (consume phase)")
    detail.add_column("figure")
    detail.add_column("median", justify="right")
    detail.add_row(
        "worker.start() → first envelope decoded (s): faust start + group join",
        f"{median(r.startup_seconds for r in results):.2f}",
    )
    detail.add_row(
        "this process's CPU while consuming (cores busy, of 2)", f"{median(r.worker_cpu_cores for r in results):.2f}"
    )
    console.print(detail)
    threads = Table(title="this process's CPU by thread while consuming (last run)")
    threads.add_column("thread (digits folded)")
    threads.add_column("CPU s", justify="right")
    threads.add_column("share", justify="right")
    last = results[-1].threads
    total = sum(last.values())
    for name, seconds in sorted(last.items(), key=lambda item: -item[1])[:10]:
        threads.add_row(name, f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
