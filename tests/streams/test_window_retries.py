"""A window whose statistics fail is kept until they are written (storage outage), or retried a bounded
number of times without holding up the other windows (a failure of that window only)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routes import alerts, ingest, monitors
from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.runtime import start_runtime
from streams.stats import StatsEngine
from streams.stats.retries import RetryPolicy
from streams.storage import Storage, StorageError, ch_time
from tests.conftest import Api, make_settings
from tests.waiting import wait_until

WINDOW = 60
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SLOW = {
    "monitor_id": "slow",
    "name": "Slow answers",
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 2000},
    "cooldown_seconds": 0,
}


class FaultyStorage(Storage):
    """Real chDB storage that fails on cue, the way a real outage or a bad window would.

    ``outage_from``: from the first query about one window (whose SQL contains ``sql``), every call
    fails for ``seconds``, pings included. ``poison``: every query about one window raises ``error``.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._faults = threading.Lock()
        self._trigger: tuple[str, str, float] | None = None
        self._down_until = 0.0
        self._poison: dict[str, Exception] = {}
        self.refused = 0
        self.poison_hits = 0

    def outage_from(self, window_start: datetime, seconds: float, *, sql: str = "") -> None:
        with self._faults:
            self._trigger = (ch_time(window_start), sql, seconds)

    def poison(self, window_start: datetime, error: Exception | None) -> None:
        with self._faults:
            if error is None:
                self._poison.pop(ch_time(window_start), None)
            else:
                self._poison[ch_time(window_start)] = error

    def _fault(self, sql: str, parameters: Mapping[str, Any] | None) -> None:
        window = (parameters or {}).get("start")
        with self._faults:
            if self._trigger and window == self._trigger[0] and self._trigger[1] in sql:
                self._down_until = time.monotonic() + self._trigger[2]
                self._trigger = None
            if time.monotonic() < self._down_until:
                self.refused += 1
                raise StorageError("query failed: Connection refused (test outage)")
            error = self._poison.get(window) if isinstance(window, str) else None
            if error is not None:
                self.poison_hits += 1
        if error is not None:
            raise error

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        self._fault(sql, parameters)
        return super().query(sql, parameters)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        self._fault(sql, parameters)
        return super().command(sql, parameters)

    def insert_json(self, table: str, rows_json: bytes) -> None:
        self._fault(f"insert into {table}", None)
        super().insert_json(table, rows_json)


def _events(start: datetime, window: int, n: int, *, latency: float = 100.0, project: str = "") -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"w{window}-{i}",
            "model": "m",
            "timestamp": (start + timedelta(seconds=window * WINDOW + i)).isoformat(),
            "latency_ms": latency,
            "features": {"x": float(i)},
            **({"project": project} if project else {}),
        }
        for i in range(n)
    ]


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """``wait_until`` ``check`` holds; storage errors (the outage itself) count as not yet."""

    def holds() -> bool:
        try:
            return check()
        except StorageError:
            return False

    wait_until(holds, what, timeout=timeout, interval=0.1)


def _stat(storage: Storage, start: datetime, family: str, metric: str) -> float | None:
    return storage.scalar(  # type: ignore[no-any-return]
        f"SELECT value FROM {storage.database}.window_stats FINAL WHERE window_start = {{at:DateTime64(3, 'UTC')}} "
        "AND family = {family:String} AND metric = {metric:String} AND dimension = '' AND model_version = ''",
        {"at": ch_time(start), "family": family, "metric": metric},  # not "start": that is how faults find a window
    )


def _app(settings: Settings, storage: Storage) -> FastAPI:
    """The real services (embedded runner, window closer, monitoring hook) over the given storage."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await start_runtime(settings, storage)
        try:
            yield
        finally:
            await app.state.runtime.stop(close_storage=False)

    app = FastAPI(lifespan=lifespan)
    for module in (ingest, monitors, alerts):
        app.include_router(module.router)
    return app


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        window_seconds=WINDOW,
        allowed_lateness_seconds=0,
        quality_refresh_seconds=0.01,
        reference_min_rows=10_000,
    )


@pytest.fixture
def faulty(settings: Settings) -> Iterator[FaultyStorage]:
    storage = FaultyStorage(settings)
    storage.migrate()
    yield storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


@pytest.fixture
def faulty_api(settings: Settings, faulty: FaultyStorage) -> Iterator[Api]:
    with TestClient(_app(settings, faulty)) as client:
        yield Api(client)


class TestStorageOutage:
    """Storage gone for a few seconds while a window closes: its rows and alerts arrive afterwards."""

    def test_window_closed_during_an_outage_is_written_and_alerted(
        self, faulty: FaultyStorage, faulty_api: Api
    ) -> None:
        headers = faulty_api.key("out")
        created = faulty_api.client.post("/v1/monitors", json=SLOW, headers=headers)
        assert created.status_code == 201, created.text
        faulty.outage_from(T0, 3.0)
        items = _events(T0, 0, 50, latency=5000.0) + _events(T0, 5, 1)  # the later event closes window 0
        assert faulty_api.client.post("/v1/inferences", content=orjson.dumps(items), headers=headers).status_code == 202
        faulty_api.wait_written()

        _wait_for(lambda: _stat(faulty, T0, "latency", "count") == 50, "window 0's statistics")
        assert faulty.refused > 0  # the close did run into the outage
        assert _stat(faulty, T0, "latency", "latency_p95_ms") == 5000.0

        def alerted() -> bool:
            listed = faulty_api.client.get("/v1/alerts", params={"monitor_id": "slow"}, headers=headers)
            return listed.status_code == 200 and [a["window_start"] for a in listed.json()] == ["2026-06-01T12:00:00Z"]

        _wait_for(alerted, "the monitor's alert for window 0")
        stats = faulty_api.services.runner.pipeline.stats  # type: ignore[union-attr]
        assert stats is not None
        assert stats.retrying == 0

    def test_late_feedback_refresh_survives_an_outage(self, faulty: FaultyStorage, faulty_api: Api) -> None:
        headers = faulty_api.key("fb")
        items = _events(T0, 0, 40) + _events(T0, 1, 40) + _events(T0, 5, 1)
        thumbs = [
            {"inference_id": f"w{w}-{i}", "kind": "thumbs", "value": 1, "feedback_id": f"t{w}-{i}"}
            for w in (0, 1)
            for i in range(20)
        ]
        assert faulty_api.client.post("/v1/inferences", content=orjson.dumps(items), headers=headers).status_code == 202
        assert faulty_api.client.post("/v1/feedback", content=orjson.dumps(thumbs), headers=headers).status_code == 202
        faulty_api.wait_written()
        faulty_api.client.portal.call(faulty_api.wait_written_stats)  # type: ignore[union-attr]
        window1 = T0 + timedelta(seconds=WINDOW)
        assert _stat(faulty, window1, "quality", "thumbs_up_rate") == 1.0

        faulty.outage_from(window1, 3.0, sql="feedback")  # from the refresh of window 1's quality
        late = [
            {"inference_id": f"w1-{i}", "kind": "thumbs", "value": -1, "feedback_id": f"late-{i}"}
            for i in range(20, 40)
        ]
        assert faulty_api.client.post("/v1/feedback", content=orjson.dumps(late), headers=headers).status_code == 202
        faulty_api.wait_written()
        faulty_api.client.portal.call(faulty_api.wait_written_stats)  # type: ignore[union-attr]

        _wait_for(lambda: _stat(faulty, window1, "quality", "thumbs_up_rate") == 0.5, "window 1's refreshed quality")
        assert faulty.refused > 0
        assert _stat(faulty, T0, "quality", "thumbs_up_rate") == 1.0


class TestBadWindow:
    """One window that keeps failing is retried a bounded number of times; the others close meanwhile."""

    @pytest.mark.parametrize(
        "error",
        [ValueError("bad data in this window"), StorageError("query failed: Memory limit exceeded")],
        ids=["bug", "storage-error-of-this-window"],
    )
    def test_failing_window_does_not_hold_up_the_others(
        self, settings: Settings, faulty: FaultyStorage, error: Exception
    ) -> None:
        policy = RetryPolicy(first_delay=0.05, max_delay=0.2, max_failures=3)
        pipeline = Pipeline(faulty, settings)
        pipeline.stats = StatsEngine(faulty, settings, retry=policy)
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(hours=2, seconds=now.timestamp() % WINDOW)  # recent: start-up recovery covers it
        bad = start + timedelta(seconds=WINDOW)
        faulty.poison(bad, error)
        items = [e for w in range(4) for e in _events(start, w, 10, project="bad")] + _events(
            start, 9, 1, project="bad"
        )
        pipeline.accept_raw("inference", orjson.dumps(items))
        pipeline.flush()  # writes the events
        pipeline.close_windows()  # closes windows 0-3

        def settled() -> bool:
            pipeline.close_windows()  # what the closer does every second
            return pipeline.stats is not None and pipeline.stats.retrying == 0

        _wait_for(settled, "the bad window to be given up")
        closed = {w: _stat(faulty, start + timedelta(seconds=w * WINDOW), "latency", "count") for w in range(4)}
        assert closed == {0: 10, 1: None, 2: 10, 3: 10}
        assert faulty.poison_hits == policy.max_failures  # tried that often, then no more

        faulty.poison(bad, None)  # fixed (a deploy): a restarted worker picks the window up again
        restarted = Pipeline(faulty, settings)
        assert restarted.stats is not None
        assert restarted.stats.recover() == 2  # window 1, and the open window 9
        restarted.close_windows(force_all=True)
        assert _stat(faulty, bad, "latency", "count") == 10
