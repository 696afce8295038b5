"""SIGTERM ends the server promptly even with thousands of windows waiting to be closed.

A real ``loopwatch serve`` process gets a backfill spread over 3,000 one-second windows (closing them
all takes minutes on this machine), then SIGTERM while it works through them. It must exit within
the grace period plus a margin, and the next process must carry on closing the backlog (start-up
recovery re-tracks windows that have events but no statistics).
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from tests.server_process import ServerProcess, run_cli
from tests.waiting import wait_until

WINDOWS = 3_000
GRACE_SECONDS = 3


def _backfill(start: datetime) -> list[bytes]:
    events = [
        {
            "event_id": f"e{n}",
            "model": "backfilled",
            "timestamp": (start + timedelta(seconds=n // 2)).isoformat(),
            "latency_ms": 100.0 + n % 7,
        }
        for n in range(WINDOWS * 2)
    ]
    return [orjson.dumps(events[i : i + 500]) for i in range(0, len(events), 500)]


def _closed_windows(client: httpx.Client, since: datetime) -> int:
    params = {"model": "backfilled", "metric": "count", "since": since.isoformat(), "limit": 100_000}
    response = client.get("/v1/stats/latency", params=params)
    assert response.status_code == 200, response.text
    return len(response.json())


def _wait_for_more_windows(client: httpx.Client, since: datetime, than: int) -> int:

    def more() -> int:
        closed = _closed_windows(client, since)
        return closed if closed > than else 0

    return wait_until(more, f"more than {than} closed windows", timeout=120, interval=0.2)


class TestStopUnderBacklog:
    """SIGTERM with a window backlog: bounded stop, recovery after restart."""

    def test_sigterm_ends_within_grace_and_restart_resumes(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "lw"
        token = run_cli(data_dir, "keys", "create", "--project", "backlog").strip().splitlines()[-1]
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        settings = {"window_seconds": "1", "allowed_lateness_seconds": "0", "stop_grace_seconds": str(GRACE_SECONDS)}
        start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)

        server = ServerProcess(data_dir, **settings)
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            for body in _backfill(start):
                assert client.post("/v1/inferences", content=body).status_code == 202
            before_stop = _wait_for_more_windows(client, start, 10)  # the closer is working through the backlog
        assert before_stop < WINDOWS // 2, "the backlog must still be large when SIGTERM arrives"
        seconds = server.terminate(timeout=GRACE_SECONDS + 30)
        stderr = server.proc.stderr.read().decode()  # type: ignore[union-attr]
        # uvicorn re-raises SIGTERM once its graceful shutdown is done
        assert server.proc.returncode in (0, -signal.SIGTERM), stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]
        assert "windows_left_for_recovery" in stderr, "the stop must have cut the backlog short"

        server = ServerProcess(data_dir, **settings)
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                after_restart = _closed_windows(client, start)
                assert after_restart < WINDOWS, "the stop must have left windows for recovery"
                resumed = _wait_for_more_windows(client, start, after_restart + 20)
        finally:
            server.terminate(timeout=GRACE_SECONDS + 30)
        assert resumed > after_restart >= before_stop, (before_stop, after_restart, resumed, seconds)
