"""A 202 is durable in embedded mode: ``kill -9`` right after acknowledgements loses none of them.

The server runs as a real ``loopwatch serve`` process on its own data dir; eight client threads post
500-event batches (inferences and feedback) until the server is killed with SIGKILL while requests are
in flight. A fresh process then reads the tables: every acknowledged id must be there. Three kill
cycles on the same data dir, so recovery after a kill is exercised too.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server_process import ROOT, ServerProcess, process_env, run_cli
from tests.waiting import wait_until

BATCH = 500
KILL_AFTER_ACKED = 12_000  # events acknowledged before the kill (the senders keep going until it lands)

# Reads the ids back in a process of its own (chDB: one engine per process, and the data dir's lock
# is free once the killed server is gone).
PROBE = """
import sys
from schemas.settings import Settings
from streams.storage import Storage
storage = Storage(Settings(_env_file=None, data_dir=sys.argv[1], log_level="error"))
db = storage.database
for table, column in (("inferences", "event_id"), ("feedback", "feedback_id")):
    ids = storage.query(f"SELECT DISTINCT {column} FROM {db}.{table}").result_rows
    sys.stdout.write("".join(f"{table} {row[0]}\\n" for row in ids))
"""


def _inferences(tag: str, seq: int) -> list[dict[str, object]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"{tag}-i{seq}-{n}",
            "model": f"m{n % 3}",
            "timestamp": now,
            "latency_ms": 100 + n,
            "input_tokens": 10,
            "output_tokens": 20,
            "prompt": "where is my order?",
            "response": "on its way",
        }
        for n in range(BATCH)
    ]


def _feedback(tag: str, seq: int) -> list[dict[str, object]]:
    return [
        {"feedback_id": f"{tag}-f{seq}-{n}", "inference_id": f"{tag}-i{seq}-{n}", "kind": "thumbs", "value": 1}
        for n in range(BATCH)
    ]


class Senders:
    """Eight threads posting batches until the server goes away; acknowledged ids are collected."""

    def __init__(self, url: str, token: str, tag: str) -> None:
        self.acked: dict[str, set[str]] = {"inferences": set(), "feedback": set()}
        self.count = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(url, token, tag, n), daemon=True) for n in range(8)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(60)

    def _send(self, url: str, token: str, tag: str, worker: int) -> None:
        table = "feedback" if worker % 4 == 3 else "inferences"
        make = _feedback if table == "feedback" else _inferences
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for seq in range(worker, 10_000, 8):
                body = orjson.dumps(make(tag, seq))
                try:
                    response = client.post(f"/v1/{table}", content=body)
                except httpx.TransportError:
                    return  # the server is gone: this request was never acknowledged
                assert response.status_code == 202, response.text
                ids = response.json()["ids"]
                with self._lock:
                    self.acked[table].update(ids)
                    self.count += len(ids)


def _stored(data_dir: Path) -> dict[str, set[str]]:
    stored: dict[str, set[str]] = {"inferences": set(), "feedback": set()}
    done = subprocess.run(  # noqa: S603 - our own probe
        [sys.executable, "-c", PROBE, str(data_dir)],
        cwd=ROOT,
        env=process_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for line in done.stdout.splitlines():
        table, event_id = line.split(" ", 1)
        stored[table].add(event_id)
    return stored


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "lw"


class TestKillAfterAck:
    """Acknowledged events survive SIGKILL of the embedded server."""

    def test_no_acknowledged_event_is_lost(self, data_dir: Path) -> None:
        token = run_cli(data_dir, "keys", "create", "--project", "durable").strip().splitlines()[-1]
        acked: dict[str, set[str]] = {"inferences": set(), "feedback": set()}
        for cycle in range(3):
            server = ServerProcess(data_dir)
            senders = Senders(server.url, token, f"c{cycle}-{uuid.uuid4().hex[:6]}")
            senders.start()
            wait_until(
                lambda: senders.count >= KILL_AFTER_ACKED,  # noqa: B023 - called within this iteration
                f"{KILL_AFTER_ACKED} acknowledged events",
                timeout=120,
                interval=0.005,  # kill soon after: under load, with requests in flight
            )
            server.kill()
            senders.join()
            for table, ids in senders.acked.items():
                acked[table] |= ids
            stored = _stored(data_dir)
            for table in acked:
                lost = acked[table] - stored[table]
                assert not lost, f"cycle {cycle}: {len(lost)} acknowledged {table} lost, e.g. {sorted(lost)[:3]}"
            assert acked["inferences"]
            assert acked["feedback"]
