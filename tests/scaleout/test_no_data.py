"""No-data monitors in Kafka mode: one API and two workers on the real broker, sharing one ClickHouse.

A model sends through the API (workers write its events), then stops: the workers' sweeps — no window
of it closes — fire one alert, delivered once to the webhook; when events return it is resolved, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from loopwatch.demo.receiver import WebhookReceiver
from tests.kafka_fixtures import delete_topics
from tests.monitors.conftest import SECRET, webhook
from tests.scaleout.topology import Topology
from tests.waiting import wait_until

CONVERGE = 300.0  # only detects a hang (2 shared cores, several processes)


@pytest.fixture
def topology(tmp_path: Path, kafka_bootstrap: str, kafka_topic_prefix: str) -> Iterator[Topology]:
    settings = {
        "kafka_partitions": "2",
        "allow_private_webhooks": "true",
        "delivery_backoff_seconds": "0.05",
        "no_data_check_seconds": "0.5",
    }
    with Topology(tmp_path, kafka_bootstrap, kafka_topic_prefix, **settings) as running:
        yield running
    delete_topics(kafka_bootstrap, kafka_topic_prefix)


def _events(n: int, tag: str) -> bytes:
    now = datetime.now(UTC)
    return orjson.dumps(
        [
            {
                "event_id": f"{tag}-{i}",
                "model": "bot",
                "latency_ms": 100,
                "timestamp": (now - timedelta(milliseconds=i)).isoformat(),
            }
            for i in range(n)
        ]
    )


def test_two_workers_fire_one_no_data_alert_and_resolve_it(topology: Topology) -> None:
    token = topology.cli("keys", "create", "--project", "quiet").strip().splitlines()[-1]
    api = topology.start_api()
    topology.start_worker()
    topology.start_worker()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    with WebhookReceiver(secret=SECRET) as hook:
        monitor = {
            "monitor_id": "bot-silent",
            "name": "Bot silent",
            "scope": "bot",
            "family": "latency",
            "metric": "count",
            "condition": {"type": "no_data", "for": "5s"},
            "channels": [webhook(hook.url)],
        }
        created = httpx.post(f"{api.url}/v1/monitors", json=monitor, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        sent = httpx.post(f"{api.url}/v1/inferences", content=_events(20, "a"), headers=headers, timeout=60)
        assert sent.status_code == 202, sent.text

        fired = wait_until(
            lambda: [r for r in list(hook.requests) if r.event_type == "alert"], "the no-data alert", CONVERGE, 0.2
        )[0]
        assert fired.json["kind"] == "no_data"
        assert fired.json["model"] == "bot"

        again = httpx.post(f"{api.url}/v1/inferences", content=_events(5, "b"), headers=headers, timeout=60)
        assert again.status_code == 202, again.text
        wait_until(
            lambda: [r for r in list(hook.requests) if r.event_type == "alert.resolved"],
            "the resolution",
            CONVERGE,
            0.2,
        )
        topology.stop_processes()  # every delivery in flight has arrived once this returns
        kinds = [(r.event_type, r.idempotency_key) for r in list(hook.requests)]
        assert [kind for kind, _ in kinds] == ["alert", "alert.resolved"], kinds
        assert orjson.loads(list(hook.requests)[1].body)["alert_id"] == fired.json["alert_id"]
