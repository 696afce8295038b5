"""Sampling is off the ingest path: calls are acknowledged once stored, even while the evaluations
queue cannot be written, and the sampler catches up (nothing missed, nothing twice) once it can."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from streams.evals import sampling, service
from streams.runtime import Runtime
from streams.storage import inferences as calls
from tests.evals.conftest import eval_settings, judge_evaluator
from tests.evals.judge_server import JudgeServer
from tests.waiting import wait_until

CALLS = 30


@pytest.fixture
def live(data_dir: Path) -> Iterator[tuple[str, Runtime]]:
    server = BackgroundServer(serving_app(eval_settings(data_dir)), free_port()).start()
    services: Runtime = server.app.state.runtime
    try:
        yield server.url, services
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def test_ingest_acks_while_the_queue_is_unusable(live: tuple[str, Runtime]) -> None:
    url, services = live
    storage, db = services.storage, services.storage.database
    headers = {"authorization": f"Bearer {services.keys.create('decoupled', 'test').token}"}
    body = {"evaluator_id": "valid", "name": "Valid JSON", "kind": "code", "code": {"check": "json_valid"}}
    assert httpx.post(f"{url}/v1/evaluators", json=body, headers=headers).status_code == 201
    first = [{"event_id": "before", "model": "chat", "prompt": "q", "response": "{}"}]
    assert httpx.post(f"{url}/v1/inferences", content=orjson.dumps(first), headers=headers).status_code == 202

    def evaluations() -> dict[str, int]:
        response = httpx.get(f"{url}/v1/evaluators/valid/evaluations", params={"limit": 1000}, headers=headers)
        return dict(response.json()["counts"])

    wait_until(lambda: evaluations() == {"done": 1}, "the first call evaluated")

    failures_before = _sampling_failures()
    storage.command(f"RENAME TABLE {db}.evaluations TO {db}.evaluations_away")  # the queue is unusable
    calls = [{"event_id": f"d-{i}", "model": "chat", "prompt": f"q {i}", "response": "{}"} for i in range(CALLS)]
    sent = httpx.post(f"{url}/v1/inferences", content=orjson.dumps(calls), headers=headers, timeout=30)
    assert sent.status_code == 202, sent.text  # acknowledged: the write did not wait for sampling
    listed = httpx.get(f"{url}/v1/inferences", params={"limit": 100}, headers=headers).json()["items"]
    assert {item["event_id"] for item in listed} >= {f"d-{i}" for i in range(CALLS)}  # and stored
    wait_until(lambda: _sampling_failures() > failures_before, "a sampling pass failing on the missing queue")

    storage.command(f"RENAME TABLE {db}.evaluations_away TO {db}.evaluations")  # back
    wait_until(lambda: evaluations() == {"done": CALLS + 1}, "every call sampled and evaluated once back")
    scores = httpx.get(f"{url}/v1/feedback", params={"source": "evaluator", "limit": 1000}, headers=headers).json()[
        "items"
    ]
    assert sorted(item["inference_id"] for item in scores) == sorted(["before", *(f"d-{i}" for i in range(CALLS))])


def _sampling_failures() -> float:
    """Failed sampling passes, as /metrics counts them (the server runs in this process)."""
    return REGISTRY.get_sample_value("loopwatch_evaluation_sampling_failures_total") or 0.0


BULK_CALLS = 2000  # per request: each flush holds at least one request, over service.BULK_EVENTS


def test_evaluations_give_way_to_bulk_ingest(
    data_dir: Path, judge: JudgeServer, judge_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While flushes are bulk, at most MAX_IN_FLIGHT_UNDER_BULK calls are judged at once (the endpoint would
    take 64); once the burst is over the backlog is judged at full concurrency, each sampled call once."""
    monkeypatch.setattr(service, "BULK_SECONDS", 5.0)  # a loaded host may pause between the test's requests
    settings = eval_settings(data_dir, evaluator_concurrency=64)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    services: Runtime = server.app.state.runtime
    try:
        judge.fail("slow", -1)
        judge.delay = 0.3
        headers = {"authorization": f"Bearer {services.keys.create('bulk', 'test').token}"}
        created = httpx.post(
            f"{server.url}/v1/evaluators", json=judge_evaluator(judge, sampling_rate=0.1), headers=headers
        )
        assert created.status_code == 201, created.text
        started = time.monotonic()
        for batch in range(3):
            calls = [
                {"event_id": f"b{batch}-{i}", "model": "chat", "prompt": f"q {i}", "response": "a"}
                for i in range(BULK_CALLS)
            ]
            sent = httpx.post(f"{server.url}/v1/inferences", content=orjson.dumps(calls), headers=headers, timeout=60)
            assert sent.status_code == 202, sent.text
        last_ack = time.monotonic()
        sampled = sorted(
            f"b{batch}-{i}"
            for batch in range(3)
            for i in range(BULK_CALLS)
            if sampling.sample_point("relevance", f"b{batch}-{i}") < 0.1
        )
        assert 450 < len(sampled) < 750  # 10 % of 6,000

        def scored() -> list[str]:
            page = httpx.get(
                f"{server.url}/v1/feedback", params={"source": "evaluator", "limit": 1000}, headers=headers
            ).json()
            return sorted(item["inference_id"] for item in page["items"])

        wait_until(lambda: scored() == sampled, "every sampled call judged once (and no other)", timeout=300)
        during = judge.most_at_once(started, last_ack + 4.0)  # bulk lasts 5 s after the last bulk flush
        after = judge.most_at_once(last_ack + 6.0, time.monotonic())
        assert 0 < during <= service.MAX_IN_FLIGHT_UNDER_BULK
        assert after > service.MAX_IN_FLIGHT_UNDER_BULK  # the backlog, at the endpoint's own concurrency
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def test_clickhouse_reads_back_exactly_the_sampled_calls(live: tuple[str, Runtime]) -> None:
    """The sampler's SQL filter computes ``sample_point`` as Python does: of 3,000 stored calls, the
    read with a 0.37 share (and a whole share of another project) returns exactly those Python samples."""
    _, services = live
    storage = services.storage
    ids = [f"id-{i}-é" for i in range(3000)]
    rows = [{"project": "p", "event_id": i, "model": "m"} for i in ids]
    rows += [{"project": "q", "event_id": f"q-{i}", "model": "m"} for i in range(5)]
    storage.insert_json("inferences", orjson.dumps(rows))
    since = datetime(2000, 1, 1, tzinfo=UTC)
    shares = [calls.Share("p", "judge-1", 0.37), calls.Share("q", "all", 1.0)]
    read = calls.ingested_since(storage, since, None, 10_000, shares)
    expected = {i for i in ids if sampling.sample_point("judge-1", i) < 0.37}
    assert 1000 < len(expected) < 1220
    assert {c.key.event_id for c in read if c.project == "p"} == expected
    assert {c.key.event_id for c in read if c.project == "q"} == {f"q-{i}" for i in range(5)}
    assert calls.ingested_since(storage, since, None, 10_000, []) == []
    assert calls.newest_ingested(storage, since) == max(c.ingested_at for c in read)
