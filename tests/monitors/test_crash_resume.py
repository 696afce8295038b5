"""kill -9 in the middle of an alert's delivery, restart on the same data directory: what is resent.

The process that fires the alert and the restarted one are real subprocesses (chDB keeps one engine
per process, so the restart cannot share this one); the receivers are real HTTP servers on loopback.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schemas.events import AlertEvent
from streams.delivery import SIGNATURE_HEADER, verify
from tests.delivery.delivery_receiver import Receiver, Reply
from tests.monitors.conftest import SECRET
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
HANG = Reply(delay=60.0)  # longer than the test: the request stays unanswered until the kill
# Only guards a hang. A sweep resends deliveries older than STALE_AFTER (10 min) only, so a resume
# seen within the test at all is the start-up resume.
RESTART_BOUND = 120.0


class Child:
    """``python -m tests.monitors.crash_child …`` (or another ``module``) with its stdout lines readable
    with a timeout."""

    def __init__(self, env: dict[str, str], *args: str, module: str = "tests.monitors.crash_child") -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.decode())

    def _drain(self) -> None:  # a full stderr pipe would block the child
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def line(self, timeout: float) -> dict[str, object]:
        try:
            return json.loads(self._lines.get(timeout=timeout))  # type: ignore[no-any-return]
        except queue.Empty:
            raise AssertionError(f"no output from the child within {timeout} s; stderr: {self.stderr()}") from None

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")[-3000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def finish(self, timeout: float = 60.0) -> dict[str, object]:
        """The child's last report, after it exited cleanly."""
        report = self.line(timeout)
        assert self.process.wait(timeout) == 0, self.stderr()
        return report


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LOOPWATCH_DATA_DIR": str(tmp_path / "data"),
        "LOOPWATCH_CLICKHOUSE_DATABASE": "crash",
        "LOOPWATCH_KAFKA_BOOTSTRAP": "",
        "LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "LOOPWATCH_DEFAULT_MONITORS": "false",
        "LOOPWATCH_DELIVERY_TIMEOUT_SECONDS": "120",  # the hanging request is still in flight at the kill
        "LOOPWATCH_DELIVERY_BACKOFF_SECONDS": "0.01",
        "LOOPWATCH_LOG_LEVEL": "warning",
    }


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = Receiver()
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


def _fire_and_kill(env: dict[str, str], answering: list[Receiver], hanging: list[Receiver]) -> str:
    """Fire an alert to ``answering`` then ``hanging`` channels, kill -9 while the hanging ones wait."""
    for receiver in hanging:
        receiver.script = [HANG]
    child = Child(env, "fire", *(r.url for r in [*answering, *hanging]), "--answered", str(len(answering)))
    try:
        alert_id = str(child.line(timeout=120)["alert_id"])
        wait_until(lambda: all(r.requests for r in hanging), "the hanging deliveries to start", timeout=30)
    finally:
        child.kill()
    return alert_id


class TestResumeAfterKill:
    """A delivery cut by kill -9 goes out at the next start, only where no 2xx was stored; never if acked."""

    def test_interrupted_channel_resent_at_start_and_only_once(
        self, env: dict[str, str], receivers: Callable[[], Receiver]
    ) -> None:
        answering, hanging = receivers(), receivers()
        alert_id = _fire_and_kill(env, [answering], [hanging])
        assert (len(answering.requests), len(hanging.requests)) == (1, 1)

        restarted = Child(env, "serve")
        wait_until(lambda: len(hanging.requests) == 2, "the interrupted delivery to be resumed", timeout=RESTART_BOUND)
        assert restarted.finish() == {"status": "open", "targets": ["delivered", "delivered"]}
        resent = hanging.requests[1]
        assert resent.headers["idempotency-key"] == alert_id  # the same key as the interrupted send
        assert verify(SECRET, resent.body, resent.headers[SIGNATURE_HEADER.lower()])
        assert AlertEvent.model_validate_json(resent.body).alert_id == alert_id

        assert Child(env, "serve").finish() == {"status": "open", "targets": ["delivered", "delivered"]}
        # each channel got exactly one answered delivery: the 2xx'd channel was never resent
        assert (len(answering.requests), len(hanging.requests)) == (1, 2)

    def test_acked_alert_not_resent(self, env: dict[str, str], receivers: Callable[[], Receiver]) -> None:
        hanging = receivers()
        alert_id = _fire_and_kill(env, [], [hanging])
        report = Child(env, "serve", "--ack", alert_id).finish()  # acked, then the service starts
        assert report == {"status": "acked", "targets": []}
        assert len(hanging.requests) == 1  # only the send interrupted by the kill
