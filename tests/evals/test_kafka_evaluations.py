"""Kafka mode (a real broker): the worker samples, claims and judges calls; scores travel the feedback topic."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from streams.kafka.admin import delete_topics
from tests.conftest import make_settings
from tests.evals.conftest import judge_evaluator
from tests.evals.judge_server import JudgeServer
from tests.waiting import wait_until


def test_judged_through_kafka(data_dir: Path, kafka_bootstrap: str, judge: JudgeServer, judge_key: str) -> None:
    settings = make_settings(
        data_dir,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        kafka_partitions=2,
        evaluator_allowed_hosts="127.0.0.1",
        evaluator_poll_seconds=0.1,
        stats_enabled=False,
    )
    try:
        with TestClient(serving_app(settings, with_worker=True)) as client:
            services = client.app.state.runtime
            headers = {"authorization": f"Bearer {services.keys.create('kafka-evals').token}"}
            assert client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
            calls = [{"event_id": f"k-{i}", "model": "chat", "prompt": f"q {i}", "response": "a"} for i in range(10)]
            assert client.post("/v1/inferences", content=orjson.dumps(calls), headers=headers).status_code == 202

            def scores() -> list[dict[str, Any]] | None:
                found = client.get("/v1/feedback", params={"source": "evaluator"}, headers=headers).json()["items"]
                return found if len(found) == 10 else None

            found = wait_until(scores, "ten scores through the feedback topic", timeout=120)
            assert {item["inference_id"] for item in found} == {f"k-{i}" for i in range(10)}
            assert len(judge.requests) == 10  # claimed and judged once each
            state = client.get("/v1/evaluators/relevance/evaluations", headers=headers).json()
            assert state["counts"] == {"done": 10}
            storage = services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    finally:
        asyncio.run(delete_topics(settings))
