"""The HTTP transport against the real API (uvicorn on a real socket, embedded pipeline, chDB)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from loopwatch import Emitter
from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(serving_app(make_settings(data_dir)), free_port()) as running:
        storage = running.app.state.runtime.storage
        yield running
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")  # after the final flush


def _wait_written(server: BackgroundServer) -> None:
    services = server.app.state.runtime
    asyncio.run_coroutine_threadsafe(services.runner.wait_idle(), services.loop).result(60)


class TestHttpDelivery:
    """Events sent over HTTP are stored exactly once; refusals are failures, never exceptions."""

    def test_three_thousand_inferences_and_feedback_are_stored(self, server: BackgroundServer) -> None:
        token = server.app.state.runtime.keys.create("sdk-http").token
        emitter = Emitter("sdk-http", http_url=server.url, api_key=token, batch_max_events=400, linger_seconds=0.05)
        ids = [
            emitter.log_inference(model=f"model-{i % 3}", prompt=f"q{i}", response="a", output_tokens=i % 50)
            for i in range(3_000)
        ]
        for i in range(0, 3_000, 6):  # 500 feedback events
            emitter.log_feedback(ids[i], kind="thumbs", value=i % 12 == 0)
        assert emitter.flush(timeout=60)
        emitter.close()
        assert emitter.stats.sent == 3_500
        assert (emitter.stats.failed, emitter.stats.dropped, emitter.stats.invalid) == (0, 0, 0)

        _wait_written(server)
        response = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200, response.text
        models = response.json()
        assert {model["model"]: model["inferences"] for model in models} == {f"model-{i}": 1_000 for i in range(3)}
        assert sum(model["feedback"] for model in models) == 500

    def test_a_refused_key_fails_the_events_without_raising(self, server: BackgroundServer) -> None:
        with capture_logs() as logs:
            emitter = Emitter("sdk-http", http_url=server.url, api_key="lw_not-a-real-key", linger_seconds=0.01)
            for _ in range(10):
                emitter.log_inference(model="m")
            assert emitter.flush(timeout=30)  # 401 is final: no retries, settled at once
            emitter.close()
        assert (emitter.stats.sent, emitter.stats.failed) == (0, 10)
        (failure,) = [entry for entry in logs if entry["event"] == "emitter_delivery_failed"]
        assert failure["status_code"] == 401
        assert failure["events"] == 10
        assert failure["error"].startswith("HTTP 401: ")

    def test_the_servers_reason_is_logged(self, server: BackgroundServer) -> None:
        token = server.app.state.runtime.keys.create("sdk-http").token
        with (
            capture_logs() as logs,
            Emitter("another-project", http_url=server.url, api_key=token) as emitter,
        ):
            emitter.log_inference(model="m", prompt="not logged")
            assert emitter.flush(timeout=30)
        assert emitter.stats.failed == 1
        (failure,) = [entry for entry in logs if entry["event"] == "emitter_delivery_failed"]
        assert failure["status_code"] == 403
        assert "cannot write to 'another-project'" in failure["error"]
        assert "not logged" not in repr(logs)
