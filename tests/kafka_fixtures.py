"""A real Apache Kafka broker for the test session, started from ``scripts/kafka`` (no Docker here).

The root ``tests/conftest.py`` imports the fixtures once (one broker per session)::

    from tests.kafka_fixtures import kafka_bootstrap, kafka_topic_prefix  # noqa: F401

One broker serves the whole session; tests isolate themselves with a unique topic prefix, whose topics
are deleted afterwards. A broker that does not start fails the tests that need it: nothing is skipped.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loopwatch._server import free_port

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka"


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A free client port whose successor (the script's controller port) is free too."""
    for _ in range(100):
        port = free_port()
        if port < 65_535 and _port_is_free(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


def _script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv: our own script
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def broker() -> Iterator[str]:
    """A single-node KRaft broker (Kafka 4.1) on a free port: ``127.0.0.1:<port>``, stopped and wiped after."""
    port = _free_port_pair()
    started = _script("start", "--port", str(port), timeout=300)
    try:
        if started.returncode != 0:
            pytest.fail(f"scripts/kafka start --port {port} failed ({started.returncode}):\n{started.stderr[-4000:]}")
        address = started.stdout.strip().splitlines()[-1]
        assert address == f"127.0.0.1:{port}", started.stdout
        yield address
    finally:
        stop_broker(address)


def stop_broker(address: str) -> None:
    """Stop and wipe the broker at ``address`` (idempotent: a test may stop its own broker early)."""
    _script("stop", "--port", address.rsplit(":", 1)[1], "--wipe", timeout=120)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The session's broker (see ``broker``), wiped at the end of the session."""
    with broker() as address:
        yield address


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Best effort: drop every topic named ``<prefix>.*`` so a long session does not pile them up."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    except Exception:
        return
    try:
        topics = [topic for topic in admin.list_topics() if topic.startswith(f"{prefix}.")]
        if topics:
            admin.delete_topics(topics, timeout_ms=10_000)
    except Exception:  # noqa: S110 - cleanup only; the broker is wiped at session end anyway
        pass
    finally:
        admin.close()


@pytest.fixture
def kafka_topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A topic prefix no other test uses (``Topics(prefix)``); its topics are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield prefix
    delete_topics(kafka_bootstrap, prefix)
