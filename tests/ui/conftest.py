"""Dashboard fixtures: a real app (embedded runner, chDB) holding demo-like traffic with a drift, and
a small project whose model, feature, tag and feedback are hostile strings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from loopwatch.demo.traffic import Traffic
from schemas.records import InferenceRecord
from schemas.settings import Settings
from streams.runtime import Runtime
from tests.conftest import make_settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = 10
EVENTS = 1500  # three 10 s windows of 500 events at 50 events/s; the drift starts half-way
ADMIN_KEY = "admin-key-for-the-dashboard-tests"
UI_SECRET = "ui-secret-for-the-dashboard-tests"  # noqa: S105 - a test fixture
PROJECT = "demo"
HOSTILE_PROJECT = "hostile"
HOSTILE_MODEL = "<script>alert(1)</script>"
HOSTILE_FEATURE = "f</script><img src=x onerror=alert(2)>"
HOSTILE_TAG = "<svg onload=alert(3)>"
HOSTILE_COMMENT = "</textarea><script>alert(4)</script>"
# A project whose traffic runs up to the real clock: windows with a gap, events stamped in the future
# (one in 2036, some a few hours ahead), a slow model with too few calls for the p95 monitor, and a
# private model no price list knows.
TIMELY_PROJECT = "timely"
FAR_FUTURE = datetime(2036, 1, 1, tzinfo=UTC)
HOSTILE_ERROR = "<img src=x onerror=alert(5)>"


def dashboard_settings(data_dir: Path, **overrides: object) -> Settings:
    return make_settings(
        data_dir,
        window_seconds=WINDOW,
        allowed_lateness_seconds=2,
        reference_min_rows=100,
        quality_refresh_seconds=0.2,
        admin_key=ADMIN_KEY,
        ui_secret=UI_SECRET,
        **overrides,
    )


@dataclass
class Seeded:
    token: str
    hostile_token: str
    timely_token: str
    now: datetime  # the real time the timely project's traffic ends at


def _timely_events(now: datetime) -> list[InferenceRecord]:
    """Records, not HTTP: ingest may refuse future timestamps, but stored data can still hold them."""
    latest = datetime.fromtimestamp(now.timestamp() // WINDOW * WINDOW, UTC) - timedelta(seconds=WINDOW)
    events = []

    def call(model: str, at: datetime, index: int, latency: float, tokens: int | None = 100) -> None:
        events.append(
            InferenceRecord(
                event_id=f"t-{model}-{at.timestamp():.0f}-{index}",
                project=TIMELY_PROJECT,
                model=model,
                timestamp=at,
                latency_ms=latency,
                input_tokens=tokens,
                output_tokens=tokens,
                prompt="hello",
                response="world",
            )
        )

    for back in (*range(12, 8, -1), *range(4, 0, -1)):  # two runs of windows with a gap between them
        for i in range(30):
            call("gpt-4o-mini", latest - timedelta(seconds=back * WINDOW - i / 3), i, 100.0 + i)
    for i in range(30):
        call("gpt-4o-mini", latest + timedelta(hours=3, seconds=i / 3), i, 100.0)  # a few hours ahead
    call("gpt-4o-mini", FAR_FUTURE, 0, 100.0)
    for i in range(5):
        call("slowpoke", latest - timedelta(seconds=2 * WINDOW - i), i, 9000.0)
    for i in range(30):
        call("private-llm-v7", latest - timedelta(seconds=2 * WINDOW - i / 3), i, 200.0, tokens=500)
    return events


def _post(client: httpx.Client, path: str, token: str, items: list[dict[str, object]]) -> None:
    if items:
        response = client.post(
            path,
            content=orjson.dumps(items),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert response.status_code == 202, response.text


def _hostile_events() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    inferences, feedback = [], []
    for window in range(3):
        for i in range(150):
            event_id = f"h{window}-{i}"
            inferences.append(
                {
                    "event_id": event_id,
                    "model": HOSTILE_MODEL,
                    "timestamp": (T0 + timedelta(seconds=window * WINDOW + i * WINDOW / 150)).isoformat(),
                    "latency_ms": 100.0 + i,
                    "prompt": "hello",
                    "response": "world",
                    "features": {HOSTILE_FEATURE: float(i % 7 + window * 10)},
                    "tags": {"route": HOSTILE_TAG},
                    **(
                        {"status": "error", "error_type": HOSTILE_ERROR if i % 20 == 0 else "rate_limit"}
                        if i % 10 == 0
                        else {}
                    ),
                }
            )
    feedback.append(
        {
            "feedback_id": "hfb-1",
            "inference_id": "h0-1",
            "kind": "comment",
            "text": HOSTILE_COMMENT,
            "timestamp": (T0 + timedelta(seconds=1)).isoformat(),
        }
    )
    return inferences, feedback


def seed(client: httpx.Client, services: Runtime) -> Seeded:
    """Demo-like traffic (three models, late feedback, a drift from event 750) and the hostile project,
    then every window closed."""
    token = services.keys.create(PROJECT, "ui-tests").token
    hostile = services.keys.create(HOSTILE_PROJECT, "ui-tests").token
    traffic = Traffic(PROJECT, start=T0, rate_per_second=50, drift_at=EVENTS // 2)
    held = []
    for inferences, feedback in traffic.batches(EVENTS, 250):
        _post(client, "/v1/inferences", token, inferences)
        held.append(feedback)
    for feedback in held:
        _post(client, "/v1/feedback", token, feedback)
    inferences, feedback = _hostile_events()
    _post(client, "/v1/inferences", hostile, inferences)
    _post(client, "/v1/feedback", hostile, feedback)
    timely = services.keys.create(TIMELY_PROJECT, "ui-tests").token
    now = datetime.now(UTC)
    publisher = services.publisher
    assert publisher is not None
    asyncio.run_coroutine_threadsafe(publisher.publish_inferences(_timely_events(now)), services.loop).result(60)
    close_all(services)
    return Seeded(token, hostile, timely, now)


def close_all(services: Runtime) -> None:
    """Everything written, every window closed and late-feedback quality refreshed, as the demo does."""
    runner = services.runner
    assert runner is not None
    loop = services.loop
    asyncio.run_coroutine_threadsafe(runner.wait_idle(), loop).result(timeout=120)
    asyncio.run_coroutine_threadsafe(
        asyncio.to_thread(runner.pipeline.close_windows, force_all=True, force_quality=True), loop
    ).result(timeout=120)
    asyncio.run_coroutine_threadsafe(runner.wait_idle(), loop).result(timeout=120)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match, "no CSRF field in the page"
    return match.group(1)


@pytest.fixture(scope="module")
def live_server(data_dir: Path) -> Iterator[tuple[str, Runtime, Seeded]]:
    """A real uvicorn server on 127.0.0.1 with the seeded data (browser and HTTP tests share it)."""
    from loopwatch._server import BackgroundServer, free_port
    from loopwatch.process import serving_app

    settings = dashboard_settings(data_dir)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    services: Runtime = server.app.state.runtime
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            seeded = seed(client, services)
        yield server.url, services, seeded
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")
