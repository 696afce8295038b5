"""Scale-out on the real Kafka broker: 2 API replicas + 3 workers on 4 partitions sharing one ClickHouse
over its HTTP protocol; one worker is killed -9 mid-stream and another joins the group.

Traffic for 8 models over 4 one-minute windows (historical event times, so windows close on the
watermark as traffic advances, not on the wall clock). A monitor breaches on every window and asks
for retraining after 2 breaching windows; it has two webhook channels on 127.0.0.1.

Asserted: every acknowledged event stored exactly once; each window's statistics identical wherever
they were computed (a window recomputed by the worker that took over gives the same numbers); exactly
one alert per (monitor, model, window), delivered exactly once to each channel under a stable
``Idempotency-Key``; exactly one retraining request per model, delivered once per channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from loopwatch.demo.receiver import WebhookReceiver
from schemas.settings import Settings
from streams.storage import Storage
from tests.conftest import make_settings
from tests.kafka_fixtures import delete_topics
from tests.monitors.conftest import SECRET, webhook
from tests.scaleout.topology import Topology
from tests.waiting import wait_until

MODELS = [f"m{i}" for i in range(8)]
WINDOWS = 4
PER_WINDOW = 40  # events per model and window
WINDOW = timedelta(minutes=1)
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
CONVERGE = 300.0  # generous: only detects a hang (2 shared cores, 7 processes)


def _batch(window: int) -> list[dict[str, object]]:
    start = T0 + window * WINDOW
    return [
        {
            "event_id": f"e-{model}-{window}-{n}",
            "model": model,
            "latency_ms": 100 + n,
            "input_tokens": 10,
            "output_tokens": 20,
            "timestamp": (start + timedelta(seconds=n)).isoformat(),
            "prompt": "hello",
        }
        for model in MODELS
        for n in range(PER_WINDOW)
    ]


@pytest.fixture
def topology(tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str) -> Iterator[Topology]:
    settings = {
        "kafka_partitions": "4",
        "kafka_session_timeout_seconds": "10",  # the group notices the killed worker within 10 s
        "window_seconds": "60",
        "allowed_lateness_seconds": "0",
        "allow_private_webhooks": "true",
        "delivery_backoff_seconds": "0.05",
        "group_wait_seconds": "0",  # one delivery per alert, keyed by its id (grouping has its own tests)
    }
    with Topology(tmp_path, kafka_bootstrap, kafka_topic_prefix, **settings) as running:
        yield running
    delete_topics(kafka_bootstrap, kafka_topic_prefix)


def _reader(topology: Topology, tmp_path: Path) -> Storage:
    settings: Settings = make_settings(tmp_path / "reader", clickhouse_dsn=topology.endpoint.dsn("loopwatch"))
    return Storage(settings)


def test_api_replicas_and_workers_share_one_clickhouse(topology: Topology, tmp_path: Path) -> None:
    token = topology.cli("keys", "create", "--project", "scale").strip().splitlines()[-1]  # migrates too
    apis = [topology.start_api() for _ in range(2)]
    workers = [topology.start_worker() for _ in range(3)]
    storage = _reader(topology, tmp_path)
    db = storage.database
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    with WebhookReceiver(secret=SECRET) as first, WebhookReceiver(secret=SECRET) as second:
        monitor = {
            "monitor_id": "volume",
            "name": "Volume",
            "family": "latency",
            "metric": "count",
            "condition": {"type": "threshold", "operator": "gte", "value": 1},
            "cooldown_seconds": 0,
            "retrain_after": 2,
            "channels": [webhook(first.url), webhook(second.url)],
        }
        created = httpx.post(f"{apis[0].url}/v1/monitors", json=monitor, headers=headers, timeout=30)
        assert created.status_code == 201, created.text

        def send(window: int, api: int) -> None:
            response = httpx.post(
                f"{apis[api].url}/v1/inferences", content=orjson.dumps(_batch(window)), headers=headers, timeout=60
            )
            assert response.status_code == 202, response.text

        def alerts() -> int:
            return int(storage.scalar(f"SELECT uniqExact(alert_id) FROM {db}.alerts WHERE project = 'scale'") or 0)

        send(0, 0)
        send(1, 1)  # closes window 0 of every model
        wait_until(lambda: alerts() > 0, "the first alerts", timeout=CONVERGE, interval=0.5)
        topology.kill_worker(workers[0])  # mid-stream: windows 1.. are still to come
        workers.append(topology.start_worker())
        for window in range(2, WINDOWS + 1):  # window WINDOWS only closes the last one
            send(window, window % 2)

        expected_alerts = len(MODELS) * WINDOWS
        closed = f"window_start < toDateTime64('{(T0 + WINDOWS * WINDOW).strftime('%Y-%m-%d %H:%M:%S')}', 3, 'UTC')"
        wait_until(
            lambda: storage.scalar(f"SELECT uniqExact(alert_id) FROM {db}.alerts WHERE {closed}") == expected_alerts,
            "an alert for every closed window",
            timeout=CONVERGE,
            interval=0.5,
        )
        alert_ids = {
            row[0] for row in storage.query(f"SELECT DISTINCT alert_id FROM {db}.alerts WHERE {closed}").result_rows
        }
        retrain_ids = {
            row[0] for row in storage.query(f"SELECT DISTINCT request_id FROM {db}.retrain_requests").result_rows
        }

        def delivered(receiver: WebhookReceiver) -> bool:
            keys = {r.idempotency_key for r in list(receiver.requests)}
            return alert_ids | retrain_ids <= keys

        wait_until(
            lambda: delivered(first) and delivered(second),
            "every alert and request at both channels",
            timeout=CONVERGE,
            interval=0.5,
        )
        running = [worker.poll() for worker in workers[1:]]  # the survivors and the new one
        topology.stop_processes()  # a duplicate delivery, were one under way, has arrived once they exited
        received = [Counter(r.idempotency_key for r in list(hook.requests)) for hook in (first, second)]

    total = len(MODELS) * PER_WINDOW * (WINDOWS + 1)
    assert storage.scalar(f"SELECT count() FROM {db}.inferences FINAL") == total
    assert storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences") == total
    # Statistics: whoever computed a window (and however often), the numbers are the same.
    differing = storage.scalar(
        f"SELECT count() FROM (SELECT model, window_start, metric, dimension, model_version, "
        f"uniqExact(value) AS values FROM {db}.window_stats WHERE family = 'latency' AND {closed} "
        "GROUP BY ALL HAVING values > 1)"
    )
    assert differing == 0
    windows = storage.scalar(
        f"SELECT uniqExact(model, window_start) FROM {db}.window_stats FINAL "
        f"WHERE family = 'latency' AND metric = 'count' AND model_version = '' AND {closed}"
    )
    assert windows == len(MODELS) * WINDOWS
    # One alert per (monitor, model, window), one retraining request per model.
    per_key = storage.query(
        f"SELECT dedup_key, uniqExact(alert_id) FROM {db}.alerts WHERE {closed} GROUP BY dedup_key"
    ).result_rows
    assert len(per_key) == len(MODELS) * WINDOWS
    assert {count for _, count in per_key} == {1}
    assert len(retrain_ids) == len(MODELS)
    retrained = storage.query(f"SELECT model, count() FROM {db}.retrain_requests FINAL GROUP BY model").result_rows
    assert sorted(retrained) == [(model, 1) for model in MODELS]
    # Delivered once per channel, each under its own stable Idempotency-Key.
    for counts in received:
        assert {key: counts[key] for key in alert_ids | retrain_ids} == dict.fromkeys(alert_ids | retrain_ids, 1)
    assert storage.scalar(f"SELECT count() FROM {db}.claims WHERE kind = 'alert'") >= len(alert_ids)
    assert running == [None, None, None]  # the survivors and the new one ran to the end
    assert [worker.poll() for worker in workers[1:]] == [0, 0, 0]  # and stopped cleanly on SIGTERM
