"""Kafka mode with real processes: 2 workers share the evaluation queue, one is killed with SIGKILL
mid-run, and every sampled call is still scored exactly once (one score per call, every row done).

The topology of ``tests/scaleout``: an API replica producing to the real broker, two ``loopwatch worker``
processes on 2 partitions, one ClickHouse endpoint they all share, and the loopback judge of
``tests/evals`` answering after 0.2 s so the kill lands while evaluations are in flight.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from streams.evals.sampling import sample_point
from streams.storage import Storage
from tests.conftest import make_settings
from tests.evals.judge_server import JudgeServer
from tests.kafka_fixtures import delete_topics
from tests.scaleout.topology import Topology
from tests.waiting import wait_until

CALLS = 120
SAMPLED = 0.5
CONVERGE = 300.0  # generous: only detects a hang (2 shared cores, 4 processes)


@pytest.fixture
def topology(tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str) -> Iterator[Topology]:
    settings = {
        "kafka_partitions": "2",
        "kafka_session_timeout_seconds": "10",  # the group notices the killed worker within 10 s
        "evaluator_allowed_hosts": "127.0.0.1",
        "evaluator_concurrency": "4",
        "evaluator_poll_seconds": "0.2",  # a worker finds rows another sampled (and the dead one's) quickly
        "stats_enabled": "false",
    }
    with Topology(tmp_path, kafka_bootstrap, kafka_topic_prefix, **settings) as running:
        yield running
    delete_topics(kafka_bootstrap, kafka_topic_prefix)


def test_worker_killed_mid_evaluation(topology: Topology, tmp_path: Path, judge: JudgeServer) -> None:
    token = topology.cli("keys", "create", "--project", "evals").strip().splitlines()[-1]  # migrates too
    api = topology.start_api()
    workers = [topology.start_worker() for _ in range(2)]
    storage = Storage(make_settings(tmp_path / "reader", clickhouse_dsn=topology.endpoint.dsn("loopwatch")))
    db = storage.database
    headers = {"authorization": f"Bearer {token}"}
    judge.delay = 0.2
    judge.fail("slow", -1)  # every answer takes 0.2 s: the kill lands mid-run
    evaluator = {
        "evaluator_id": "relevance",
        "name": "Relevance",
        "kind": "llm_judge",
        "template": "answer_relevance",
        "sampling_rate": SAMPLED,
        "judge": {"base_url": judge.base_url, "model": "judge-1", "timeout_seconds": 10},
    }
    created = httpx.post(f"{api.url}/v1/evaluators", json=evaluator, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    calls = [
        {"event_id": f"k-{i}", "model": f"m{i % 4}", "prompt": f"question {i}", "response": "an answer"}
        for i in range(CALLS)
    ]
    sent = httpx.post(f"{api.url}/v1/inferences", content=orjson.dumps(calls), headers=headers, timeout=60)
    assert sent.status_code == 202, sent.text

    def queued() -> int:
        return int(storage.scalar(f"SELECT count() FROM {db}.evaluations FINAL WHERE project = 'evals'") or 0)

    def done() -> int:
        return int(
            storage.scalar(f"SELECT count() FROM {db}.evaluations FINAL WHERE project = 'evals' AND status = 'done'")
            or 0
        )

    wait_until(lambda: len(judge.requests) >= 8, "the judge to be busy", timeout=CONVERGE, interval=0.2)
    assert done() < queued() or queued() < CALLS * SAMPLED / 2  # mid-run: there is work left
    topology.kill_worker(workers[0])

    # The sample is the deterministic one (a hash of evaluator and event): no call missed, none added.
    expected = {f"k-{i}" for i in range(CALLS) if sample_point("relevance", f"k-{i}") < SAMPLED}

    def scores() -> list[tuple[str, int, int]]:
        """Per scored call: its distinct score ids and its rows (after FINAL), stored from the feedback topic."""
        return list(
            storage.query(
                f"SELECT inference_id, uniqExact(feedback_id), count() FROM {db}.feedback FINAL "
                "WHERE project = 'evals' AND source = 'evaluator' GROUP BY inference_id"
            ).result_rows
        )

    wait_until(
        lambda: done() == len(expected) and len(scores()) == len(expected),
        "every sampled call evaluated and its score stored",
        timeout=CONVERGE,
        interval=0.5,
    )
    stored = scores()
    evaluated = {
        row[0]
        for row in storage.query(
            f"SELECT event_id FROM {db}.evaluations FINAL WHERE project = 'evals' AND status = 'done'"
        ).result_rows
    }
    assert evaluated == expected
    assert queued() == len(expected)  # nothing else queued, nothing left pending
    assert {row[0] for row in stored} == evaluated  # every sampled call has a score
    assert {(row[1], row[2]) for row in stored} == {(1, 1)}  # exactly one, under one id
    assert workers[1].poll() is None  # the survivor took the dead worker's share over
