"""Sampling is off the ingest path: calls are acknowledged once stored, even while the evaluations
queue cannot be written, and the sampler catches up (nothing missed, nothing twice) once it can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from streams.runtime import Runtime
from tests.evals.conftest import eval_settings
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
