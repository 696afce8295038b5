"""Benchmark: does memory stay flat as events pile up, in ``loopwatch serve`` and in a Kafka worker?

What is measured
    ``--mode serve`` (default): a real ``loopwatch serve`` process (embedded chDB, default settings,
    durable acks) on a fresh data dir takes ``--events`` (default 10M) LLM-like inference events
    through ``POST /v1/inferences`` (500 per request, 8 connections from this process). Steps are
    counted in acknowledged events (a durable 202 means written).

    ``--mode worker``: a real Apache Kafka broker (``scripts/kafka start --port <free port>``, stopped
    and wiped at the end) and a real ``loopwatch worker`` process (own data dir, unique topic prefix,
    ``/metrics`` on ``LOOPWATCH_METRICS_PORT``). This process produces the same events with the SDK's
    Kafka ``Emitter``, at most ``--backlog`` (200k) events ahead of what the worker has written, so the
    worker consumes a steady stream rather than one huge backlog. Steps are counted in events the
    worker has written, read from its ``/metrics`` every 0.5 s
    (``loopwatch_events_written_total{table="inferences"}``, counted after each ClickHouse insert
    returns); each read is a real scrape, so a scrape that leaks (as the storage-memory gauge once did:
    a chDB connection per scrape thread) shows up here.

    ``--mode both`` runs serve, then worker. In both modes event time advances 2,000 events per second
    over 20 models, so 60-second windows keep closing during the run (``LOOPWATCH_WINDOW_SECONDS=60``).
    After every ``--step`` (default 1M) events the process's resident set size (``VmRSS`` of its
    ``/proc`` status) is printed, with ``RssAnon`` (heap and anonymous mappings: what grows if
    anything leaks) and ``loopwatch_storage_memory_bytes`` from its ``/metrics`` (the memory chDB's
    tracker counts: queries, merges, caches); the rest of the RSS is Python and the allocator.

    Before the verdict, the counts are checked: after the process is stopped its data dir is opened
    and ``count() FINAL`` and ``uniqExact(event_id)`` of ``inferences`` must equal the events sent,
    ``dead_letters`` must be empty, and (worker) its written counter must equal the events produced,
    with no dead letters counted and nothing failed or dropped by the emitter.

    Baseline, side by side: RSS after the first step. Target (issue #10, "memory flat"): RSS after 10M
    events within 10 % of RSS after 1M, for ``serve`` and for a Kafka worker.

Run from the repository root::

    .venv/bin/python bench/memory.py                                    # serve, 10M events
    .venv/bin/python bench/memory.py --mode worker                      # Kafka worker, 10M events
    .venv/bin/python bench/memory.py --events 2000000 --step 500000    # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common  # noqa: F401 - puts the repository root on sys.path first
import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
BATCH, CONNECTIONS, MODELS, EVENTS_PER_SECOND = 500, 8, 20, 2_000
PROJECT = "mem"
TOPICS = ["billing", "refund", "password reset", "shipping delay", "api limits", "invoice", "upgrade plan"]
WRITTEN = 'loopwatch_events_written_total{table="inferences"}'
STALL_SECONDS = 300  # no progress for this long: the run is abandoned


def _status_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``RssAnon`` of a live process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _metrics(url: str) -> dict[str, float]:
    """A ``/metrics`` exposition as ``{'name{labels}': value}`` (samples only)."""
    text = httpx.get(url, timeout=30).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _events(total: int, start: datetime) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``BATCH`` LLM-like inference events (the fields of ``Emitter.log_inference``)."""
    for begin in range(0, total, BATCH):
        events = []
        for n in range(begin, min(begin + BATCH, total)):
            topic = TOPICS[n % 7]
            events.append(
                {
                    "event_id": f"mem-{n}",
                    "model": f"model-{n % MODELS:02d}",
                    "model_version": "v1" if n % 5 else "v2",
                    "timestamp": start + timedelta(seconds=n / EVENTS_PER_SECOND),
                    "latency_ms": 200.0 + (n * 7919) % 900,
                    "input_tokens": 20 + n % 300,
                    "output_tokens": 10 + n % 500,
                    "provider": "openai",
                    "prompt": f"Customer {n % 4001} asks about {topic} and {TOPICS[n % 5]}",
                    "response": f"Here is how to handle {topic}: step {n % 13}.",
                    "features": {"plan": ["free", "pro"][n % 2], "account_age_days": n % 700},
                    "tags": {"route": ["/chat", "/support"][n % 2]},
                }
            )
        yield events


@dataclass
class Reading:
    events: int
    rss: float  # MiB
    anon: float  # MiB
    chdb: float  # MiB, NaN when /metrics did not report it
    seconds: float


class Steps:
    """Takes a reading of process ``pid`` each time the stored count passes the next multiple of ``step``."""

    def __init__(self, pid: int, metrics_url: str, step: int, total: int) -> None:
        self.pid, self.metrics_url = pid, metrics_url
        self.marks = list(range(step, total + 1, step))
        self.readings: list[Reading] = []
        self.began = time.monotonic()

    def stored(self, count: int) -> None:
        while self.marks and count >= self.marks[0]:
            status = _status_mib(self.pid)
            chdb = _metrics(self.metrics_url).get("loopwatch_storage_memory_bytes", float("nan")) / 2**20
            reading = Reading(
                self.marks.pop(0), status["VmRSS"], status["RssAnon"], chdb, time.monotonic() - self.began
            )
            self.readings.append(reading)
            print(
                f"  {reading.events:>12,} events: RSS {reading.rss:6.0f} MiB  RssAnon {reading.anon:6.0f} MiB  "
                f"chDB tracked {reading.chdb:6.0f} MiB  ({reading.seconds:.0f} s)",
                flush=True,
            )


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before it was ready")
        try:
            if ready():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {seconds:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # SIGTERM: both commands finish the batch in hand and exit
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def _env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
    env.update(LOOPWATCH_DATA_DIR=str(data_dir), LOOPWATCH_LOG_LEVEL="error", LOOPWATCH_WINDOW_SECONDS="60")
    env.update({f"LOOPWATCH_{name.upper()}": value for name, value in settings.items()})
    return env


def run_serve(args: argparse.Namespace, data_dir: Path, start: datetime) -> list[Reading]:
    """``loopwatch serve`` fed over HTTP; returns the readings once every event was acknowledged."""
    env = _env(data_dir)
    token = (
        subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "loopwatch", "keys", "create", "--project", PROJECT],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = 18_000 + os.getpid() % 10_000
    server = subprocess.Popen([sys.executable, "-m", "loopwatch", "serve", "--port", str(port)], env=env, cwd=ROOT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, server, "loopwatch serve")
        bodies = (orjson.dumps(events) for events in _events(args.events, start))
        lock, sent = threading.Lock(), [0]
        steps = Steps(server.pid, f"{url}/metrics", args.step, args.events)
        print(f"`loopwatch serve` (pid {server.pid}) every {args.step:,} acknowledged events")

        def send() -> None:
            headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                while True:
                    with lock:
                        body = next(bodies, None)
                    if body is None:
                        return
                    response = client.post("/v1/inferences", content=body)
                    if response.status_code != 202:
                        raise SystemExit(f"status {response.status_code}: {response.text[:300]}")
                    with lock:
                        sent[0] += response.json()["accepted"]
                        steps.stored(sent[0])

        threads = [threading.Thread(target=send) for _ in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if sent[0] != args.events:
            raise SystemExit(f"the server acknowledged {sent[0]:,} of {args.events:,} events")
    finally:
        _stop(server)
    return steps.readings


def run_worker(args: argparse.Namespace, data_dir: Path, start: datetime) -> list[Reading]:
    """A broker and ``loopwatch worker`` fed by the Emitter; returns the readings once every event was written."""
    from kafka_e2e import Broker

    from loopwatch import Emitter
    from loopwatch._server import free_port

    broker = Broker()
    print(f"starting the Kafka broker on port {broker.port} (scripts/kafka)", flush=True)
    worker, emitter = None, None
    try:
        bootstrap = broker.start()
        metrics_port = free_port()
        prefix = f"mem{uuid.uuid4().hex[:8]}"
        env = _env(data_dir, kafka_bootstrap=bootstrap, topic_prefix=prefix, metrics_port=str(metrics_port))
        worker = subprocess.Popen([sys.executable, "-m", "loopwatch", "worker"], env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        # /metrics is served once the worker has created its topics and started consuming
        _wait_until(lambda: WRITTEN in _metrics(url), worker, "loopwatch worker")
        emitter = Emitter(PROJECT, kafka_bootstrap=bootstrap, topic_prefix=prefix, max_buffer=args.backlog + BATCH)
        steps = Steps(worker.pid, url, args.step, args.events)
        print(f"`loopwatch worker` (pid {worker.pid}, topics {prefix}.*) every {args.step:,} written events")
        produced, written, last_change, next_look = 0, 0, time.monotonic(), 0.0

        def look() -> None:
            """Read the worker's written counter, take the readings it passed, give up on a stall."""
            nonlocal written, last_change
            if worker.poll() is not None:
                raise SystemExit(f"loopwatch worker exited with {worker.returncode}")
            now_written = int(_metrics(url)[WRITTEN])
            if now_written != written:
                written, last_change = now_written, time.monotonic()
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise SystemExit(f"the worker stalled at {written:,} of {produced:,} produced events")
            steps.stored(written)

        for events in _events(args.events, start):
            for event in events:
                emitter.log_inference(**event)
            produced += len(events)
            if time.monotonic() >= next_look:
                look()
                next_look = time.monotonic() + 0.5
            while produced - written > args.backlog:
                time.sleep(0.5)
                look()
        if not emitter.flush(timeout=600):
            raise SystemExit(f"the emitter did not deliver everything: {emitter.stats}")
        while written < produced:
            time.sleep(0.5)
            look()
        stats = emitter.stats
        final = _metrics(url)
        dead = final.get('loopwatch_events_written_total{table="dead_letters"}', 0) + sum(
            value for name, value in final.items() if name.startswith("loopwatch_dead_letters_total")
        )
        if stats.sent != produced or stats.dropped or stats.failed or stats.invalid:
            raise SystemExit(f"emitter: {stats} for {produced:,} events")
        if written != produced or dead:
            raise SystemExit(f"worker wrote {written:,} of {produced:,} events, {dead:.0f} dead letters")
    finally:
        if emitter is not None:
            emitter.close()
        if worker is not None:
            _stop(worker)
        broker.stop()
    return steps.readings


def read_back(data_dir: Path, expected: int) -> None:
    """The stopped process's data dir holds exactly the events sent, each once, and no dead letter."""
    from schemas.settings import Settings
    from streams.storage import Storage

    storage = Storage(Settings(_env_file=None, data_dir=data_dir, log_level="error"))
    try:
        db = storage.database
        final = int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL"))
        unique = int(storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences"))
        dead = int(storage.scalar(f"SELECT count() FROM {db}.dead_letters"))
    finally:
        storage.close()
    if not final == unique == expected or dead:
        raise SystemExit(f"read-back mismatch: FINAL={final:,} unique={unique:,} dead={dead} expected={expected:,}")
    print(f"  read back: {final:,} events, each once, no dead letters")


def report(mode: str, readings: list[Reading]) -> None:
    first, last = readings[0], readings[-1]
    change = last.rss / first.rss - 1
    print(
        f"{mode}: RSS after {last.events:,} vs after {first.events:,} events: {change:+.1%} "
        f"(target within 10 %): {'MET' if abs(change) <= 0.10 else 'NOT met'}; "
        f"RssAnon {last.anon - first.anon:+.0f} MiB, chDB tracked {last.chdb - first.chdb:+.0f} MiB; "
        f"{last.events / last.seconds:,.0f} events/s on average",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("serve", "worker", "both"), default="serve")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--step", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=200_000, help="worker: produced - written at most")
    args = parser.parse_args()
    if args.step > args.events:
        parser.error("--step must not exceed --events")
    if args.mode == "both":  # one process per mode: chDB opens one data dir per process (the read-back)
        for mode in ("serve", "worker"):
            knobs = ["--events", str(args.events), "--step", str(args.step), "--backlog", str(args.backlog)]
            subprocess.run([sys.executable, __file__, "--mode", mode, *knobs], check=True)  # noqa: S603
        return 0
    data_dir = Path(tempfile.mkdtemp(prefix=f"lw-bench-memory-{args.mode}-"))
    try:
        start = datetime.now(UTC) - timedelta(seconds=args.events / EVENTS_PER_SECOND + 600)
        readings = (run_serve if args.mode == "serve" else run_worker)(args, data_dir, start)
        read_back(data_dir, args.events)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(args.mode, readings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
