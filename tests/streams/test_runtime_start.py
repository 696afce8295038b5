"""A start-up that fails late stops what it had started: no consumer, task or thread is left behind, the
storage is released and the process exits (real broker, real chDB, in a child process of its own)."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.settings import Settings
from streams.kafka.admin import delete_topics
from streams.storage import refuse_if_held

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
REPORT_TIMEOUT = 180  # seconds: start-up, the failure and the settling time, on a busy machine


def _start_failing(mode: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, object]]:
    child = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "tests.streams.start_fails_child", mode],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # it reports once start_runtime raised (a selector, not select(): a long run's descriptors pass 1024)
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        ready = selector.select(REPORT_TIMEOUT)
    assert ready, "the child did not report"
    line = child.stdout.readline()
    assert line, f"the child exited with {child.wait(10)} before reporting"
    return child, json.loads(line)


class TestFailedStartUp:
    """Each late step that fails: what started before it is stopped in reverse order, the error is raised."""

    @pytest.mark.parametrize("mode", ["worker", "up"])
    def test_late_failure_leaves_nothing_running(self, mode: str, kafka_bootstrap: str, tmp_path: Path) -> None:
        prefix = f"fail{mode}{os.getpid()}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LOOPWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LOOPWATCH_TOPIC_PREFIX": prefix,
            "LOOPWATCH_DATA_DIR": str(tmp_path / "data"),
            "LOOPWATCH_LOG_LEVEL": "warning",
        }
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if mode == "worker":  # the last step, after the worker consumes: its metrics port is taken
            env["LOOPWATCH_METRICS_PORT"] = str(busy.getsockname()[1])
            expected = "OSError"
        else:  # after the publisher and the worker started: the monitors file is invalid
            (tmp_path / "monitors.yaml").write_text("42\n")
            env["LOOPWATCH_MONITORS_FILE"] = str(tmp_path / "monitors.yaml")
            expected = "MonitorFileError"
        settings = Settings(_env_file=None, data_dir=tmp_path / "data", kafka_bootstrap=kafka_bootstrap)
        try:
            child, report = _start_failing(mode, env)
            try:
                assert str(report["error"]).startswith(f"{expected}:"), report
                assert report["tasks"] == []
                assert report["threads"] == []
                refuse_if_held(settings)  # the child, still alive, no longer holds its chDB directory
                assert child.stdin is not None
                child.stdin.write("\n")
                child.stdin.flush()
                assert child.wait(60) == 0  # nothing left to keep the process from exiting
            finally:
                child.kill()
                child.wait(10)
        finally:
            busy.close()
            asyncio.run(delete_topics(settings.model_copy(update={"topic_prefix": prefix})))
