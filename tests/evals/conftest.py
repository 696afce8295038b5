"""Fixtures of online evaluations: the real app (embedded runner, chDB) and a real judge on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.settings import Settings
from tests.conftest import Api, make_settings
from tests.evals.judge_server import JudgeServer
from tests.monitors.conftest import SECRET

JUDGE_KEY = "sk-test-judge-key-0123456789"
KEY_ENV = "LOOPWATCH_TEST_JUDGE_KEY"


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    server = JudgeServer().start()
    yield server
    server.stop()


@pytest.fixture
def judge_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, JUDGE_KEY)
    return JUDGE_KEY


def eval_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "evaluator_allowed_hosts": "127.0.0.1",
        "evaluator_backoff_seconds": 0.01,
        "evaluator_poll_seconds": 0.05,
        "evaluator_breaker_failures": 50,
        "stats_enabled": False,
    }
    base.update(overrides)
    return make_settings(data_dir, **base)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return eval_settings(data_dir)


@pytest.fixture
def api(settings: Settings, judge_key: str) -> Iterator[Api]:
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def judge_evaluator(server: JudgeServer, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "evaluator_id": "relevance",
        "name": "Answer relevance",
        "kind": "llm_judge",
        "template": "answer_relevance",
        "judge": {"base_url": server.base_url, "model": "judge-1", "api_key_env": KEY_ENV, "timeout_seconds": 5},
    }
    body.update(overrides)
    return body


def send_calls(api: Api, headers: dict[str, str], count: int, *, prefix: str = "c", model: str = "chat") -> list[str]:
    """``count`` calls, every other one's prompt containing BAD (the test judge scores those 0.1)."""
    events = [
        {
            "event_id": f"{prefix}-{i}",
            "model": model,
            "prompt": f"question {i}" + (" BAD" if i % 2 else ""),
            "response": f"answer {i}",
            "latency_ms": 100 + i,
        }
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        chunk = events[start : start + 1000]
        response = api.client.post("/v1/inferences", content=orjson.dumps(chunk), headers=headers)
        assert response.status_code == 202, response.text
    return [event["event_id"] for event in events]


WINDOW = 60  # seconds: the windows of the statistics tests


@pytest.fixture
def stats_app(data_dir: Path) -> Iterator[tuple[Api, WebhookReceiver]]:
    """The app with statistics on (windows close as soon as a later call arrives) and a webhook receiver."""
    settings = eval_settings(
        data_dir,
        stats_enabled=True,
        window_seconds=WINDOW,
        allowed_lateness_seconds=0,
        quality_refresh_seconds=0.01,
        allow_private_webhooks=True,
    )
    with WebhookReceiver(secret=SECRET) as hook, TestClient(serving_app(settings)) as client:
        yield Api(client), hook
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
