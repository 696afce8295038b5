"""kill -9 in the middle of the feedback loop's work, restart on the same data directory: what is kept.

Real processes killed with SIGKILL: ``loopwatch serve`` while a review queue fills and while reviewers
submit, and a monitoring process while it snapshots the dataset a firing retraining request names.
After a restart: each queued call is in the queue once, each acknowledged review is stored once (with
its feedback), and the request names exactly one dataset version, whose download matches its SHA-256.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from loopwatch.demo.receiver import WebhookReceiver
from tests.monitors.conftest import SECRET
from tests.monitors.test_crash_resume import Child
from tests.server_process import ROOT, ServerProcess, process_env, run_cli
from tests.waiting import wait_until

T0 = datetime(2026, 6, 1, tzinfo=UTC)
FIELDS = [{"name": "verdict", "type": "labels", "labels": ["good", "bad"]}]
FAST_FILL = {"queue_fill_seconds": "0.05", "queue_fill_settle_seconds": "0.1", "queue_fill_batch": "100"}

# Runs SQL in a process of its own (chDB: one engine per process; the data dir's lock is free once the
# server is gone) and prints the rows as JSON.
PROBE = """
import sys, orjson
from schemas.settings import Settings
from streams.storage import Storage
storage = Storage(Settings(_env_file=None, data_dir=sys.argv[1], log_level="error"))
rows = storage.query(sys.argv[2].replace("{db}", storage.database)).result_rows
sys.stdout.write(orjson.dumps([list(row) for row in rows]).decode())
"""


def probe(data_dir: Path, sql: str) -> list[list[Any]]:
    done = subprocess.run(  # noqa: S603 - our own probe
        [sys.executable, "-c", PROBE, str(data_dir), sql],
        cwd=ROOT,
        env=process_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


def calls(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
            "model": "m",
            "status": "error",
            "prompt": f"prompt {i}",
            "response": "…",
        }
        for i in range(n)
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "lw"


def client(server: ServerProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60)


def queue_items(server: ServerProcess, token: str, queue_id: str) -> int:
    with client(server, token) as http:
        return int(http.get(f"/v1/queues/{queue_id}").json()["progress"]["items"])


class TestQueueFillKilled:
    """A queue filling as calls arrive, its server killed mid-fill: after a restart every call once."""

    def test_every_call_once_after_a_kill_mid_fill(self, data_dir: Path) -> None:
        token = run_cli(data_dir, "keys", "create", "--project", "loop").strip().splitlines()[-1]
        server = ServerProcess(data_dir, **FAST_FILL)
        with client(server, token) as http:
            made = http.post("/v1/queues", json={"queue_id": "errs", "fields": FIELDS, "rules": [{"errors": True}]})
            assert made.status_code == 201, made.text
            for batch in range(6):  # all acknowledged before the kill: the queue owes exactly these
                sent = http.post("/v1/inferences", json=calls(f"b{batch}", 500))
                assert sent.status_code == 202, sent.text
        wait_until(lambda: queue_items(server, token, "errs") >= 300, "the queue to fill, 100 calls a pass")
        server.kill()
        killed_at = probe(data_dir, "SELECT uniqExact(inference_id) FROM {db}.queue_items")[0][0]
        assert killed_at < 3000  # killed while filling

        restarted = ServerProcess(data_dir, **FAST_FILL)
        wait_until(lambda: queue_items(restarted, token, "errs") == 3000, "the restarted server to fill the rest")
        restarted.terminate(60)
        rows, distinct = probe(data_dir, "SELECT count(), uniqExact(inference_id) FROM {db}.queue_items")[0]
        assert (rows, distinct) == (3000, 3000)  # no call added twice, merged or not


class Reviewers:
    """Threads that take the next item and review it until the server goes away (or nothing is left);
    acknowledged reviews are collected."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.acked: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._review, args=(url, name, token), daemon=True)
            for name, token in tokens.items()
        ]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(120)

    def _review(self, url: str, name: str, token: str) -> None:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60) as http:
            while True:
                try:
                    item = http.post("/v1/queues/all/next")
                    if item.status_code == 204:
                        return
                    call = item.json()["inference_id"]
                    done = http.post(f"/v1/queues/all/items/{call}/review", json={"scores": {"verdict": "bad"}})
                except httpx.TransportError:
                    return  # the server is gone: this review was never acknowledged
                assert done.status_code == 201, done.text
                with self._lock:
                    self.acked[(call, name)] = done.json()["feedback_ids"]


class TestReviewSubmitKilled:
    """Reviewers submitting while the server is killed: every acknowledged review is stored once."""

    def test_acknowledged_reviews_stored_once(self, data_dir: Path) -> None:
        token = run_cli(data_dir, "keys", "create", "--project", "loop").strip().splitlines()[-1]
        names = ("ana", "ben", "cy")
        tokens = {
            name: run_cli(data_dir, "keys", "create", "--project", "loop", "--name", name, "--scope", "review")
            .strip()
            .splitlines()[-1]
            for name in names
        }
        server = ServerProcess(data_dir)
        with client(server, token) as http:
            assert http.post("/v1/inferences", json=calls("c", 200)).status_code == 202
            wait_until(lambda: len(http.get("/v1/inferences?limit=1000").json()["items"]) == 200, "the calls stored")
            made = http.post("/v1/queues", json={"queue_id": "all", "fields": FIELDS, "rules": [{}]})
            assert made.json()["progress"]["items"] == 200
        reviewers = Reviewers(server.url, tokens)
        wait_until(lambda: len(reviewers.acked) >= 40, "40 acknowledged reviews", interval=0.005)
        server.kill()  # reviews in flight
        reviewers.join()
        acked = dict(reviewers.acked)

        restarted = ServerProcess(data_dir)
        finishing = Reviewers(restarted.url, tokens)  # the same reviewers finish the queue
        finishing.join()
        acked.update(finishing.acked)
        restarted.terminate(60)

        stored = probe(
            data_dir,
            "SELECT inference_id, reviewer, feedback_ids, count() OVER (PARTITION BY inference_id) "
            "FROM {db}.queue_reviews FINAL WHERE undone = 0 AND skipped = 0",
        )
        by_key = {(item, who): ids for item, who, ids, _ in stored}
        assert len(by_key) == len(stored) == 200  # one review per item (reviews_per_item 1), none twice
        assert {reviews for *_, reviews in stored} == {1}
        for key, feedback_ids in acked.items():
            assert by_key.get(key) == feedback_ids, key
        feedback = probe(data_dir, "SELECT DISTINCT feedback_id FROM {db}.feedback WHERE source = 'annotator'")
        assert {row[0] for row in feedback} >= {i for ids in acked.values() for i in ids}


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")},
        "PYTHONPATH": str(ROOT),
        "LOOPWATCH_DATA_DIR": str(tmp_path / "data"),
        "LOOPWATCH_CLICKHOUSE_DATABASE": "loop",
        "LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "LOOPWATCH_DEFAULT_MONITORS": "false",
        "LOOPWATCH_DELIVERY_BACKOFF_SECONDS": "0.01",
        "LOOPWATCH_LOG_LEVEL": "warning",
    }


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


class TestSnapshotKilled:
    """A retraining request's process killed while it snapshots the request's dataset: the restarted
    process makes the one version the request names and sends the request once."""

    def test_one_version_per_request_matching_its_hash(
        self, child_env: dict[str, str], receiver: WebhookReceiver
    ) -> None:
        child = Child(child_env, "retrain", receiver.url, module="tests.api.loop_crash_child")
        try:
            snapshotting = child.line(timeout=120)  # rows copied, version not committed yet
        finally:
            child.kill()
        assert snapshotting["rows"] == 4
        assert not [r for r in receiver.requests if r.event_type == "retrain"]  # not sent before its version

        restarted = Child(child_env, "serve", module="tests.api.loop_crash_child")
        versions: list[dict[str, Any]] = restarted.finish()  # type: ignore[assignment]
        # one version (its number may follow the one the killed process had reserved)
        assert [(v["name"], v["request_id"], v["rows"]) for v in versions] == [
            ("retrain-m1", snapshotting["request_id"], 4)
        ]
        assert versions[0]["download_sha256"] == versions[0]["sha256"]
        sent = [r.json for r in receiver.requests if r.event_type == "retrain"]
        assert len(sent) == 1
        assert sent[0]["request_id"] == snapshotting["request_id"]
        assert (sent[0]["dataset"]["version"], sent[0]["dataset"]["sha256"]) == (
            versions[0]["version"],
            versions[0]["sha256"],
        )

        assert Child(child_env, "serve", module="tests.api.loop_crash_child").finish() == versions  # no more
        assert len([r for r in receiver.requests if r.event_type == "retrain"]) == 1
