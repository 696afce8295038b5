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

from schemas.evaluators import EvaluatorCreate

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from streams.evals import sampling, service
from streams.runtime import Runtime
from streams.evals.store import EvaluatorStore
from streams.storage import Storage, as_utc, sampler_marks
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


@pytest.fixture
def bulk_server(data_dir: Path, judge: JudgeServer, judge_key: str) -> Iterator[tuple[BackgroundServer, Runtime]]:
    """A server with a 10 % sampled judge evaluator (project ``bulk``); the judge answers after 0.3 s."""
    server = BackgroundServer(serving_app(eval_settings(data_dir, evaluator_concurrency=64)), free_port()).start()
    services: Runtime = server.app.state.runtime
    judge.fail("slow", -1)
    judge.delay = 0.3
    try:
        yield server, services
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def _bulk_headers(server: BackgroundServer, services: Runtime, judge: JudgeServer) -> dict[str, str]:
    headers = {"authorization": f"Bearer {services.keys.create('bulk', 'test').token}"}
    created = httpx.post(f"{server.url}/v1/evaluators", json=judge_evaluator(judge, sampling_rate=0.1), headers=headers)
    assert created.status_code == 201, created.text
    return headers


def _send_bulk(server: BackgroundServer, headers: dict[str, str], batch: int) -> list[str]:
    """One request of ``BULK_CALLS`` calls; returns the ids the evaluator samples."""
    ids = [f"b{batch}-{i}" for i in range(BULK_CALLS)]
    calls = [{"event_id": event_id, "model": "chat", "prompt": f"q {event_id}", "response": "a"} for event_id in ids]
    sent = httpx.post(f"{server.url}/v1/inferences", content=orjson.dumps(calls), headers=headers, timeout=60)
    assert sent.status_code == 202, sent.text
    return [event_id for event_id in ids if sampling.sample_point("relevance", event_id) < 0.1]


def _scored(services: Runtime) -> list[str]:
    """The calls the evaluator's scores are stored for (a score's id is fixed per call: re-scoring replaces it)."""
    storage = services.storage
    rows = storage.query(
        f"SELECT inference_id FROM {storage.database}.feedback FINAL WHERE source = 'evaluator'"
    ).result_rows
    return sorted(row[0] for row in rows)


def test_evaluations_hold_during_bulk_ingest(
    bulk_server: tuple[BackgroundServer, Runtime], judge: JudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While bulk writes go on, nothing is sampled or judged: the judge's first request comes after the
    burst's last acknowledgement; then the backlog is judged at full concurrency, each sampled call once."""
    monkeypatch.setattr(service, "BULK_SECONDS", 5.0)  # a loaded host may pause between the test's requests
    server, services = bulk_server
    headers = _bulk_headers(server, services, judge)
    sampled = sorted(event_id for batch in range(3) for event_id in _send_bulk(server, headers, batch))
    last_ack = time.monotonic()
    assert 450 < len(sampled) < 750  # 10 % of 6,000

    wait_until(lambda: _scored(services) == sampled, "every sampled call judged once (and no other)", 300)
    wait_until(lambda: len(judge.spans) == len(sampled), "the judge's last answers recorded")
    assert min(received for received, _ in judge.spans) > last_ack  # held through the burst
    assert judge.most_at_once(last_ack, time.monotonic()) > 1  # then at full speed


def test_a_long_burst_stops_holding_evaluations(
    bulk_server: tuple[BackgroundServer, Runtime], judge: JudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst longer than BULK_MAX_HOLD is the load: evaluations stop holding and are judged during it
    (a hold would leave a backlog that never shrinks), each sampled call once."""
    monkeypatch.setattr(service, "BULK_SECONDS", 5.0)
    monkeypatch.setattr(service, "BULK_MAX_HOLD", 0.0)
    server, services = bulk_server
    headers = _bulk_headers(server, services, judge)
    started = time.monotonic()
    sampled: list[str] = []
    for batch in range(60):  # the burst lasts until the judge was asked during it (or 60 requests)
        sampled += _send_bulk(server, headers, batch)
        if batch >= 2 and len(judge.spans) >= 2:
            break
    last_ack = time.monotonic()
    assert len(judge.spans) >= 2, "nothing was judged during a burst of 60 bulk requests"

    wait_until(lambda: _scored(services) == sorted(sampled), "every sampled call judged once", 300)
    assert judge.most_at_once(started, last_ack) > 1  # not one at a time: at the endpoint's concurrency


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


def test_a_pass_after_no_flush_does_not_look_for_newer_calls(storage: Storage) -> None:
    """The mark moves past calls the evaluator does not sample (read by the newest-call query) only on a
    pass after a flush: a pass with none since the last one skips that query and rests on the sampled calls."""
    store = EvaluatorStore(storage)
    spec = {"evaluator_id": "json", "name": "JSON", "kind": "code", "code": {"check": "json_valid"}}
    store.create("p", EvaluatorCreate.model_validate({**spec, "sampling_rate": 0.5}))
    sampler = service.Sampler(storage, store, service.Budgets(storage), overlap=service.LOCAL_OVERLAP)
    unsampled = (f"u-{i}" for i in range(1000) if sampling.sample_point("json", f"u-{i}") >= 0.5)

    def store_call(event_id: str) -> datetime:
        storage.insert_json("inferences", orjson.dumps([{"project": "p", "event_id": event_id, "model": "m"}]))
        return _ingested_at(storage, event_id)

    first = store_call(next(unsampled))
    sampler.stored()
    assert sampler.sample_once() == 0
    assert sampler_marks.read(storage, "inferences") == first  # after a flush: moved past the unsampled call

    second = store_call(next(unsampled))
    assert second > first
    assert sampler.sample_once() == 0
    assert sampler_marks.read(storage, "inferences") == first  # no flush since: the query was skipped

    sampler.stored()
    assert sampler.sample_once() == 0
    assert sampler_marks.read(storage, "inferences") == second


def _ingested_at(storage: Storage, event_id: str) -> datetime:
    """The call's ``ingested_at`` as stored."""
    value = storage.scalar(
        f"SELECT ingested_at FROM {storage.database}.inferences WHERE event_id = {{id:String}}", {"id": event_id}
    )
    return as_utc(value)
