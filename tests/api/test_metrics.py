"""``/metrics`` of the real app (embedded runner, chDB) after real traffic, parsed as Prometheus text.

Counters are process-global, so every assertion compares a scrape taken after the traffic with one
taken before it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from schemas.events import InferenceEvent
from schemas.records import inference_record
from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.storage import Storage
from tests.conftest import Api, make_settings
from tests.metrics_text import Scrape, scrape_process
from tests.monitors.conftest import SECRET, webhook
from tests.waiting import wait_until

JSON = {"content-type": "application/json"}
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
        delivery_max_attempts=3,
        window_seconds=60,
        allowed_lateness_seconds=0,
        reference_min_rows=10_000,
        max_batch_items=50,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def scrape(api: Api) -> Scrape:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def post(api: Api, path: str, body: Any, headers: dict[str, str]) -> int:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return api.client.post(path, content=content, headers={**headers, **JSON}).status_code


def slow_calls(n: int, model: str = "chat") -> list[dict[str, Any]]:
    """``n`` inferences inside one 60 s window, slow enough to breach a 2000 ms p95 monitor."""
    return [
        {
            "event_id": f"{model}-{i}",
            "model": model,
            "latency_ms": 3000.0 + i,
            "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


def close_all(api: Api) -> None:
    pipeline = api.services.runner.pipeline  # type: ignore[union-attr]
    api.client.portal.call(asyncio.to_thread, lambda: pipeline.close_windows(force_all=True))  # type: ignore[union-attr]


class TestIngestCounts:
    """Accepted, rejected, dead-lettered and written events are counted exactly, and flushes timed."""

    def test_counts_after_real_traffic(self, api: Api) -> None:
        headers = api.key("shop")
        before = scrape(api)
        assert post(api, "/v1/inferences", [{"event_id": f"a-{i}", "model": "chat"} for i in range(20)], headers) == 202
        assert post(api, "/v1/inferences", {"event_id": "a-20", "model": "chat"}, headers) == 202
        feedback = [{"inference_id": f"a-{i}", "kind": "thumbs", "value": 1} for i in range(5)]
        assert post(api, "/v1/feedback", feedback, headers) == 202

        assert post(api, "/v1/inferences", b'[{"model": "chat"', headers) == 400
        assert post(api, "/v1/inferences", [{"model": "chat", "latency_ms": -1}], headers) == 422
        assert post(api, "/v1/inferences", [{"model": "chat", "project": "other"}], headers) == 403
        assert post(api, "/v1/inferences", [{"model": "chat"}] * 51, headers) == 413
        assert post(api, "/v1/inferences", [{"model": "chat"}], {}) == 401
        assert post(api, "/v1/feedback", [{"inference_id": "a-1", "kind": "nope"}], headers) == 422
        assert api.client.get("/v1/inferences/missing", headers=headers).status_code == 404  # not ingest

        # Dead letters come from raw messages (the Kafka path): feed one the way the worker does.
        api.services.runner.pipeline.accept_raw("inference", b"{not json")  # type: ignore[union-attr]
        api.wait_written()
        after = scrape(api)

        assert after.delta(before, "loopwatch_events_accepted_total", kind="inference", transport="http") == 21
        assert after.delta(before, "loopwatch_events_accepted_total", kind="feedback", transport="http") == 5
        rejected = {
            status: after.delta(before, "loopwatch_events_rejected_total", kind="inference", status=status)
            for status in ("400", "401", "403", "404", "413", "422")
        }
        assert rejected == {"400": 1, "401": 1, "403": 1, "404": 0, "413": 1, "422": 1}
        assert after.delta(before, "loopwatch_events_rejected_total", kind="feedback", status="422") == 1
        assert after.delta(before, "loopwatch_dead_letters_total", source="inference") == 1
        assert after.delta(before, "loopwatch_events_written_total", table="inferences") == 21
        assert after.delta(before, "loopwatch_events_written_total", table="feedback") == 5
        assert after.delta(before, "loopwatch_events_written_total", table="dead_letters") == 1
        assert after.delta(before, "loopwatch_flush_seconds_count") >= 1
        assert after.delta(before, "loopwatch_flush_seconds_sum") > 0
        assert after.delta(before, "loopwatch_flush_failures_total") == 0
        assert after.value("loopwatch_sink_pending_events") == 0

    def test_failed_flushes_are_counted_and_retried(self, api: Api) -> None:
        storage = api.services.storage
        db = storage.database
        headers = api.key("shop")
        before = scrape(api)
        storage.command(f"RENAME TABLE {db}.inferences TO {db}.inferences_away")  # a real insert failure
        events = [{"event_id": f"f-{i}", "model": "chat"} for i in range(7)]
        with ThreadPoolExecutor(1) as pool:
            try:  # the 202 waits for the write, so the request runs beside the checks
                status = pool.submit(post, api, "/v1/inferences", events, headers)
                wait_until(lambda: scrape(api).delta(before, "loopwatch_flush_failures_total") >= 1, "a failed flush")
                wait_until(lambda: scrape(api).value("loopwatch_sink_pending_events") >= 7, "the events kept")
                assert not status.done(), "no 202 before the events are written"
            finally:
                storage.command(f"RENAME TABLE {db}.inferences_away TO {db}.inferences")
            assert status.result(timeout=60) == 202
        api.wait_written()
        after = scrape(api)
        assert after.delta(before, "loopwatch_events_written_total", table="inferences") == 7
        assert after.value("loopwatch_sink_pending_events") == 0


class TestGauges:
    """Gauges are read at scrape time from the live objects, and forget them once they are gone."""

    def test_queue_depth_counts_waiting_batches(self, api: Api) -> None:
        publisher = api.services.publisher
        records = [inference_record(InferenceEvent(project="shop", model="chat", event_id=f"q-{i}")) for i in range(3)]

        async def publish_then_scrape() -> str:
            # Each publish queues its batch and then waits for the write; the consumer task was woken by
            # the first put but runs only after the three publishers and this coroutine had their turn.
            tasks = [asyncio.create_task(publisher.publish_inferences([record])) for record in records]
            await asyncio.sleep(0)
            text = generate_latest().decode()  # what /metrics serves, read before the consumer drains
            await asyncio.gather(*tasks)
            return text

        idle = scrape(api).value("loopwatch_queue_depth")
        busy = Scrape(api.client.portal.call(publish_then_scrape))  # type: ignore[union-attr]
        assert busy.value("loopwatch_queue_depth") - idle == 3
        api.wait_written()
        assert scrape(api).value("loopwatch_queue_depth") == idle
        assert int(api.services.storage.scalar(f"SELECT count() FROM {api.services.storage.database}.inferences")) == 3

    def test_storage_memory_is_what_embedded_chdb_tracks(self, api: Api) -> None:
        before = api.services.storage.tracked_memory()
        scraped = scrape(api).value("loopwatch_storage_memory_bytes")
        after = api.services.storage.tracked_memory()
        assert before is not None and after is not None
        assert before > 0  # queries ran: the tracker counts their memory
        # the engine's one figure (other live Storage objects of this test process read the same engine:
        # not summed), give or take what the queries in between allocated
        assert min(before, after) - 64 * 2**20 <= scraped <= max(before, after) + 64 * 2**20

    def test_sink_pending_follows_a_pipeline_while_it_lives(self, storage: Storage, settings: Settings) -> None:
        gc.collect()
        before = scrape_process()
        pipeline = Pipeline(storage, settings)
        pipeline.accept_inferences([inference_record(InferenceEvent(project="p", model="m")) for _ in range(4)])
        assert scrape_process().delta(before, "loopwatch_sink_pending_events") == 4
        pipeline.flush()
        assert scrape_process().delta(before, "loopwatch_sink_pending_events") == 0
        assert scrape_process().delta(before, "loopwatch_windows_pending") == 1  # one (project, model) window
        pipeline.accept_inferences([inference_record(InferenceEvent(project="p", model="m"))])
        del pipeline
        gc.collect()
        assert scrape_process().delta(before, "loopwatch_sink_pending_events") == 0
        assert scrape_process().delta(before, "loopwatch_windows_pending") == 0


class TestWindowsAndAlerts:
    """A closing window is counted and timed; its alert is counted by severity, deliveries by outcome."""

    def test_window_alert_and_deliveries(self, api: Api) -> None:
        headers = api.key("live")
        with (
            WebhookReceiver(secret=SECRET, fail_first=1) as flaky,
            WebhookReceiver(secret=SECRET, fail_first=1000) as dead,
        ):
            monitor = {
                "name": "Slow answers",
                "family": "latency",
                "metric": "latency_p95_ms",
                "severity": "critical",
                "condition": {"type": "threshold", "operator": "gt", "value": 2000},
                "cooldown_seconds": 0,
                "min_samples": 5,
                "channels": [webhook(flaky.url), webhook(dead.url)],
            }
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
            before = scrape(api)
            assert post(api, "/v1/inferences", slow_calls(20), headers) == 202
            api.wait_written()
            open_windows = scrape(api)
            assert open_windows.delta(before, "loopwatch_windows_pending") == 1
            assert open_windows.delta(before, "loopwatch_windows_closed_total") == 0

            close_all(api)

            def finished() -> float:
                after = scrape(api)
                return sum(
                    after.delta(
                        before, "loopwatch_alert_deliveries_total", channel="webhook", event="alert", outcome=outcome
                    )
                    for outcome in ("delivered", "failed")
                )

            wait_until(lambda: finished() == 2, "both deliveries to end")
        after = scrape(api)
        assert after.delta(before, "loopwatch_windows_closed_total") == 1
        assert after.delta(before, "loopwatch_window_close_seconds_count") == 1
        assert after.delta(before, "loopwatch_window_close_failures_total") == 0
        assert after.delta(before, "loopwatch_windows_pending") == 0
        assert after.delta(before, "loopwatch_alerts_fired_total", severity="critical") == 1
        outcomes = {
            outcome: after.delta(
                before, "loopwatch_alert_deliveries_total", channel="webhook", event="alert", outcome=outcome
            )
            for outcome in ("delivered", "retried", "failed")
        }
        # flaky: 503 then 200; dead: 503 three times (delivery_max_attempts=3)
        assert outcomes == {"delivered": 1, "retried": 1 + 2, "failed": 1}
        assert (len(flaky.requests), len(dead.requests)) == (2, 3)

    def test_failed_window_close_is_counted(self, api: Api) -> None:
        storage = api.services.storage
        db = storage.database
        headers = api.key("shop")
        assert post(api, "/v1/inferences", slow_calls(10), headers) == 202
        api.wait_written()
        before = scrape(api)
        storage.command(f"RENAME TABLE {db}.window_stats TO {db}.window_stats_away")  # the write of the stats fails
        try:
            close_all(api)
        finally:
            storage.command(f"RENAME TABLE {db}.window_stats_away TO {db}.window_stats")
        failed = scrape(api)
        # the window is retried (streams.stats.retries), so the closer may have tried it more than once
        assert failed.delta(before, "loopwatch_window_close_failures_total") >= 1
        wait_until(lambda: scrape(api).delta(before, "loopwatch_windows_closed_total") == 1, "the retried close")
        after = scrape(api)
        assert after.delta(before, "loopwatch_window_close_seconds_count") == 1  # only a close that wrote is timed
