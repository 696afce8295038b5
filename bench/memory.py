"""Benchmark: does the embedded server's memory stay flat as events pile up?

What is measured
    A real ``loopwatch serve`` process (embedded chDB, default settings, durable acks) on a fresh data
    dir takes ``--events`` (default 10M) LLM-like inference events through ``POST /v1/inferences``
    (500 per request, 8 connections from this process), with event time advancing 2,000 events per
    second over 20 models, so 60-second windows keep closing during the run
    (``LOOPWATCH_WINDOW_SECONDS=60``). After every ``--step`` (default 1M) acknowledged events the
    server's resident set size (``VmRSS`` of its ``/proc`` status) is printed.

    Baseline, side by side: RSS after the first step. Target (issue "window statistics at scale"):
    RSS after 10M events within 10 % of RSS after 1M.

Run from the repository root::

    .venv/bin/python bench/memory.py
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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
BATCH, CONNECTIONS, MODELS, EVENTS_PER_SECOND = 500, 8, 20, 2_000
TOPICS = ["billing", "refund", "password reset", "shipping delay", "api limits", "invoice", "upgrade plan"]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _bodies(total: int, start: datetime) -> Iterator[bytes]:
    for begin in range(0, total, BATCH):
        events = []
        for n in range(begin, min(begin + BATCH, total)):
            topic = TOPICS[n % 7]
            events.append(
                {
                    "event_id": f"mem-{n}",
                    "model": f"model-{n % MODELS:02d}",
                    "model_version": "v1" if n % 5 else "v2",
                    "timestamp": (start + timedelta(seconds=n / EVENTS_PER_SECOND)).isoformat(),
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
        yield orjson.dumps(events)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--step", type=int, default=1_000_000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lw-bench-memory-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
    env.update(LOOPWATCH_DATA_DIR=str(data_dir), LOOPWATCH_LOG_LEVEL="error", LOOPWATCH_WINDOW_SECONDS="60")
    token = (
        subprocess.run(
            [sys.executable, "-m", "loopwatch", "keys", "create", "--project", "mem"],
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
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        start = datetime.now(UTC) - timedelta(seconds=args.events / EVENTS_PER_SECOND + 600)
        bodies = _bodies(args.events, start)
        lock, sent, marks = threading.Lock(), [0], list(range(args.step, args.events + 1, args.step))
        readings: list[tuple[int, float, float]] = []
        began = time.monotonic()
        print(f"RSS of `loopwatch serve` (pid {server.pid}) every {args.step:,} acknowledged events")

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
                        while marks and sent[0] >= marks[0]:
                            rss = _rss_mib(server.pid)
                            readings.append((marks.pop(0), rss, time.monotonic() - began))
                            print(
                                f"  {readings[-1][0]:>12,} events: RSS {rss:8.0f} MiB  ({readings[-1][2]:.0f} s)",
                                flush=True,
                            )

        threads = [threading.Thread(target=send) for _ in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first, last = readings[0][1], readings[-1][1]
        change = last / first - 1
        print(
            f"after {readings[-1][0]:,} vs after {readings[0][0]:,} events: {change:+.1%} "
            f"(target within 10 %): {'MET' if abs(change) <= 0.10 else 'NOT met'}; "
            f"ingest {readings[-1][0] / readings[-1][2]:,.0f} events/s on average"
        )
    finally:
        server.terminate()
        server.wait(120)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
