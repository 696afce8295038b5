"""The scale-out topology as real processes: API replicas and Kafka workers sharing one ClickHouse.

ClickHouse is ``tests.ch_endpoint`` (chDB behind ClickHouse's HTTP interface, in a process of its own);
every loopwatch process reaches it with ``LOOPWATCH_CLICKHOUSE_DSN=http://127.0.0.1:PORT/<db>``, as it
would a server. Used by ``tests/scaleout`` and ``bench/scaleout.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.ch_endpoint import EndpointProcess
from tests.server_process import ROOT, ServerProcess, process_env


class Topology:
    """One ClickHouse endpoint, ``loopwatch serve`` replicas and ``loopwatch worker`` processes."""

    def __init__(self, tmp: Path, bootstrap: str, prefix: str, *, group: str | None = None, **settings: str) -> None:
        self.tmp = tmp
        self.endpoint = EndpointProcess(tmp / "clickhouse")
        self.group = group or f"{prefix}-workers"  # the workers' consumer group (faust app id)
        self.settings = {
            "clickhouse_dsn": self.endpoint.dsn("loopwatch"),
            "kafka_bootstrap": bootstrap,
            "topic_prefix": prefix,
            **settings,
        }
        self.apis: list[ServerProcess] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return process_env(self.tmp / "data", **self.settings)

    def cli(self, *args: str) -> str:
        """``loopwatch <args>`` against the shared ClickHouse; returns stdout."""
        done = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "loopwatch", *args],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    def start_api(self) -> ServerProcess:
        api = ServerProcess(self.tmp / "data", **self.settings)
        self.apis.append(api)
        return api

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "loopwatch", "worker", "--app-id", self.group],
            env=self.env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)

    def stop_processes(self) -> None:
        """SIGTERM every API replica and worker and wait until each has exited: each drains its deliveries
        in flight first, so once this returns no request from them can still arrive anywhere."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for api in self.apis:
            if api.proc.poll() is None:
                api.terminate(30)
        for worker in self.workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()

    def close(self) -> None:
        self.stop_processes()
        self.endpoint.close()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
