"""Two processes evaluating the same window at once: one alert, one retraining request, one delivery.

Each "process" is its own engine, alert store (with its own claim owner) and dispatcher on the one
real chDB engine. A barrier after the alerts table's "already fired?" read holds both evaluations there, so both see the window as new before either writes: the worst interleaving of a
partition moving between workers. Only the storage-level claim can keep the result single.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest

from loopwatch.demo.receiver import WebhookReceiver
from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.monitors.alerts import AlertStore
from streams.monitors.dispatcher import AlertDispatcher
from streams.monitors.evaluation import EvaluationResult, MonitorEngine
from streams.monitors.store import MonitorStore
from streams.storage import Claims, Storage, retrain_requests
from streams.storage import alerts as alert_rows
from tests.monitors.conftest import drift_rows, webhook

DRIFT = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
    "retrain_after": 1,
}


def _racing_dedup_reads(monkeypatch: pytest.MonkeyPatch, barrier: threading.Barrier) -> None:
    """The real dedup read, which then waits until the other process has made the same read."""
    read = alert_rows.by_dedup_key

    def racing(storage: Storage, project: str, keys: Iterable[str]) -> dict[str, str]:
        found = read(storage, project, keys)
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(alert_rows, "by_dedup_key", racing)


def _process(storage: Storage, settings: Settings, owner: str) -> tuple[MonitorEngine, AlertDispatcher]:
    alerts = AlertStore(storage, owner=owner)
    engine = MonitorEngine(MonitorStore(storage, settings, ttl_seconds=0), alerts, settings)
    return engine, AlertDispatcher(alerts, settings)


def _race(engines: list[MonitorEngine], rows: Any) -> list[EvaluationResult]:
    results: list[EvaluationResult] = [EvaluationResult() for _ in engines]

    def run(i: int) -> None:
        results[i] = engines[i].evaluate(rows)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_racing_evaluations_fire_and_deliver_once(
    storage: Storage, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _racing_dedup_reads(monkeypatch, threading.Barrier(2))
    processes = [_process(storage, settings, f"test-{name}:1:x") for name in ("a", "b")]
    with WebhookReceiver() as hook:
        MonitorStore(storage, settings).create(
            "shop", MonitorCreate.model_validate({**DRIFT, "channels": [webhook(hook.url)]})
        )
        results = _race([engine for engine, _ in processes], drift_rows(0))

        async def dispatch_all() -> None:
            for (_, dispatcher), result in zip(processes, results, strict=True):
                await dispatcher.dispatch(result.alerts, result.retrains, result.monitors)
                await dispatcher.aclose()

        asyncio.run(dispatch_all())  # returns once every delivery got its answer (recorded before it)
        requests = list(hook.requests)

    assert sum(len(result.alerts) for result in results) == 1
    assert sum(len(result.retrains) for result in results) == 1
    alerts = alert_rows.listed(storage, "shop")
    assert len(alerts) == 1
    assert alerts[0].delivery.status == "delivered"
    assert len(retrain_requests.listed(storage, "shop")) == 1
    assert sorted(r.event_type for r in requests) == ["alert", "retrain"]
    assert {r.idempotency_key for r in requests if r.event_type == "alert"} == {alerts[0].alert_id}


def test_racing_claims_have_one_winner(storage: Storage) -> None:
    """Many threads claim the same keys at once: each key has one owner and every claimant agrees."""
    keys = [f"k{i}" for i in range(5)]
    claimants = [Claims(storage, owner=f"test-{i}:1:x") for i in range(6)]
    won: list[set[str]] = [set() for _ in claimants]
    start = threading.Barrier(len(claimants))

    def run(i: int) -> None:
        start.wait(timeout=30)
        won[i] = claimants[i].claim("shop", "alert", keys)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claimants))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [key for keys_won in won for key in keys_won]
    assert sorted(winners) == keys  # every key won exactly once
    assert storage.scalar(f"SELECT count() FROM {storage.database}.claims") == len(keys)
    owners = claimants[0].owners("shop", "alert", keys)
    for i, keys_won in enumerate(won):
        assert {key for key, owner in owners.items() if owner == claimants[i].owner} == keys_won


def test_resume_takes_over_a_dead_holders_delivery_once(storage: Storage, settings: Settings) -> None:
    """A delivery claimed by a process that died is resumed by exactly one of two resuming processes."""
    engine, _ = _process(storage, settings, "test-dead:1:x")
    with WebhookReceiver() as hook:
        MonitorStore(storage, settings).create(
            "shop", MonitorCreate.model_validate({**DRIFT, "retrain_after": None, "channels": [webhook(hook.url)]})
        )
        result = engine.evaluate(drift_rows(0))
        alert_id = result.alerts[0].alert_id
        # The dead process had claimed the delivery, then died before sending (pid 0 never runs here).
        Claims(storage, owner=f"{Claims(storage).owner.split(':')[0]}:999999999:dead").claim(
            "shop", "delivery", [f"{alert_id}/0"]
        )
        resumers = [AlertDispatcher(AlertStore(storage, owner=f"test-{n}:1:x"), settings) for n in ("c", "d")]
        store = MonitorStore(storage, settings)

        async def resume_all() -> list[int]:
            counts = await asyncio.gather(*(d.resume_pending(store.get, older_than=timedelta(0)) for d in resumers))
            for dispatcher in resumers:
                await dispatcher.aclose()
            return list(counts)

        asyncio.run(resume_all())
        assert [r.idempotency_key for r in hook.requests] == [alert_id]


def test_episode_evaluated_out_of_order_requests_retraining_once(storage: Storage, settings: Settings) -> None:
    """A worker that took over a partition closes a later window (watermark) before earlier ones the
    dead worker left unclosed (recovery): the breach episode still fires one retraining request."""
    alerts = AlertStore(storage)
    engine = MonitorEngine(MonitorStore(storage, settings, ttl_seconds=0), alerts, settings)
    MonitorStore(storage, settings).create(
        "shop", MonitorCreate.model_validate({**DRIFT, "retrain_after": 2, "channels": []})
    )
    fired = [len(engine.evaluate(drift_rows(n)).retrains) for n in (0, 3, 1, 2)]
    assert sum(fired) == 1
    assert len(retrain_requests.listed(alerts.storage, "shop")) == 1
    # After a calm window, a new episode gets its own request.
    engine.evaluate(drift_rows(4, drifted=False))
    assert [len(engine.evaluate(drift_rows(n)).retrains) for n in (5, 6)] == [0, 1]
    assert len(retrain_requests.listed(alerts.storage, "shop")) == 2
