"""``loopwatch serve`` as a real process on its own data dir, for crash and shutdown tests.

chDB allows one engine per process, so a test that kills or restarts the server (or reads its data
dir afterwards) needs the server in a process of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from loopwatch._server import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def process_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without any ``LOOPWATCH_*`` of the caller's, plus the data dir and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
    env.update(LOOPWATCH_DATA_DIR=str(data_dir), LOOPWATCH_LOG_LEVEL="warning")
    env.update({f"LOOPWATCH_{name.upper()}": value for name, value in settings.items()})
    return env


def run_cli(data_dir: Path, *args: str) -> str:
    """Run ``loopwatch <args>`` to completion on ``data_dir``; returns its stdout."""
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "loopwatch", *args],
        env=process_env(data_dir),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


class ServerProcess:
    """``loopwatch serve`` on a free port, ready (``/readyz`` 200) when the constructor returns."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "loopwatch", "serve", "--port", str(self.port)],
            env=process_env(data_dir, **settings),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def ready() -> bool:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "the server to be ready", timeout=120, interval=0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float) -> float:
        """SIGTERM; returns the seconds until the process ended (fails the test past ``timeout``)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM") from None
        return time.monotonic() - started
