"""HTTP load-generator processes for the benchmarks (not a benchmark itself).

Each process holds ``threads`` keep-alive ``httpx.Client`` connections and POSTs pre-serialised
bodies handed to it before the clock starts, so the timed phase measures the server, not JSON
encoding in the client. The parent talks to a process through two queues:

    parent → ("load", url, path, headers, bodies, threads)   child → ("ready", cpu_before)
    parent → ("go",)                                         child → ("done", report)
    parent → None                                            (exit)

``report`` holds the status counts, the events the server accepted (``accepted`` from each 202
body), the time of the first send and last answer (``time.monotonic``, comparable across processes
on Linux) and the child's CPU seconds for the phase.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _run_phase(
    url: str, path: str, headers: dict[str, str], bodies: list[bytes], threads: int, sent_counter: Any
) -> dict[str, Any]:
    """POST every body once over ``threads`` keep-alive connections; returns the phase report."""
    import httpx
    import orjson

    cpu_before = _cpu()
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    statuses: Counter[int] = Counter()
    accepted = 0
    errors: list[str] = []
    latencies: list[float] = []
    first, last = [float("inf")], [0.0]

    def run_connection() -> None:
        nonlocal accepted
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                started = time.monotonic()
                try:
                    response = client.post(path, content=bodies[index])
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc)[:200])
                    continue
                ended = time.monotonic()
                got = orjson.loads(response.content).get("accepted", 0) if response.status_code == 202 else 0
                with lock:
                    statuses[response.status_code] += 1
                    accepted += got
                    latencies.append(ended - started)
                    first[0] = min(first[0], started)
                    last[0] = max(last[0], ended)
                    if response.status_code not in (200, 202) and len(errors) < 5:  # 200: OTLP export
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                with sent_counter.get_lock():
                    sent_counter.value += got

    workers = [threading.Thread(target=run_connection) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {
        "statuses": dict(statuses),
        "accepted": accepted,
        "errors": errors,
        "first": first[0],
        "last": last[0],
        "cpu": _cpu() - cpu_before,
        "latencies": latencies,
    }


def serve(commands: Any, results: Any, sent_counter: Any) -> None:
    """A load-generator process: wait for bodies, then for "go", send them, report; until None."""
    while True:
        command = commands.get()
        if command is None:
            return
        _, url, path, headers, bodies, threads = command
        results.put(("ready", None))
        assert commands.get() == ("go",)
        results.put(("done", _run_phase(url, path, headers, bodies, threads, sent_counter)))


class LoadGenerators:
    """``processes`` spawned children with ``threads`` connections each."""

    def __init__(self, processes: int, threads: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.threads = threads
        self.sent = ctx.Value("q", 0)
        self._results = ctx.Queue()
        self._commands = [ctx.Queue() for _ in range(processes)]
        self._procs = [
            ctx.Process(target=serve, args=(commands, self._results, self.sent), daemon=True, name=f"loadgen-{i}")
            for i, commands in enumerate(self._commands)
        ]
        for proc in self._procs:
            proc.start()

    @property
    def connections(self) -> int:
        return len(self._procs) * self.threads

    def load(self, url: str, path: str, headers: dict[str, str], bodies: list[bytes]) -> None:
        """Hand each process its share (round robin) and wait until all hold their bodies."""
        with self.sent.get_lock():
            self.sent.value = 0
        for i, commands in enumerate(self._commands):
            commands.put(("load", url, path, headers, bodies[i :: len(self._commands)], self.threads))
        for _ in self._commands:
            kind, _ = self._results.get(timeout=300)
            assert kind == "ready"

    def go(self) -> float:
        """Start all processes; returns the start time (``time.monotonic``)."""
        started = time.monotonic()
        for commands in self._commands:
            commands.put(("go",))
        return started

    def wait(self, on_tick: Any = None) -> list[dict[str, Any]]:
        import queue

        reports: list[dict[str, Any]] = []
        while len(reports) < len(self._commands):
            try:
                kind, report = self._results.get(timeout=0.1)
            except queue.Empty:
                if on_tick is not None:
                    on_tick(self.sent.value)
                continue
            assert kind == "done"
            reports.append(report)
        if on_tick is not None:
            on_tick(self.sent.value)
        return reports

    def close(self) -> None:
        for commands in self._commands:
            commands.put(None)
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
