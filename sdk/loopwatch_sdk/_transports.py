"""Where envelopes go: a Kafka topic or the loopwatch HTTP API, behind one three-method interface.

Transports run on the emitter's background thread and report every envelope exactly once through
``on_result(count, error)`` (``error`` is ``None`` on success), synchronously (HTTP) or from the
producer's I/O thread (Kafka). They never raise out of ``send``: an envelope that cannot be delivered is
a failed result, so the emitter's books always balance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from loopwatch_sdk.retry_after import retry_after_seconds
from loopwatch_sdk.wire import Kind, Topics

if TYPE_CHECKING:
    from kafka import KafkaProducer

ResultCallback = Callable[[int, BaseException | None], None]

#: The API's default ``max_batch_items``: a larger HTTP batch is refused with a 413.
HTTP_MAX_BATCH_EVENTS = 5_000
#: Kafka brokers refuse messages over ``message.max.bytes`` (1 MiB by default).
KAFKA_MAX_REQUEST_SIZE = 1_048_576


class DeliveryError(Exception):
    """An envelope was refused or could not be delivered; the message says by whom and why."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Transport(Protocol):
    """The emitter's only view of the outside world."""

    def send(self, kind: Kind, key: str, body: bytes, count: int) -> None:
        """Deliver one envelope of ``count`` events (now or later) and report it to ``on_result``."""

    def close(self, timeout: float) -> None:
        """Deliver what is in flight within ``timeout`` seconds, report the rest as failed, release."""


class KafkaTransport:
    """kafka-python producer, built on the background thread so a dead broker never blocks the host.

    ``KafkaProducer()`` itself blocks while it bootstraps (and raises when no broker answers), so it is
    built lazily by ``connect``/``send``; after a failed attempt, sends fail fast for ``retry_interval``
    seconds instead of blocking the emitter thread on every envelope. Once connected, the producer's
    own retries (idempotent, bounded by ``delivery_timeout_ms``) ride out broker restarts.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        on_result: ResultCallback,
        *,
        max_request_size: int = KAFKA_MAX_REQUEST_SIZE,
        options: Mapping[str, Any] | None = None,
        on_connect: Callable[[], None] | None = None,
        retry_interval: float = 5.0,
    ) -> None:
        from kafka.codec import has_lz4

        self._topics = topics
        self._on_result = on_result
        self._on_connect = on_connect
        self._retry_interval = retry_interval
        self._config: dict[str, Any] = {
            "bootstrap_servers": [part.strip() for part in bootstrap.split(",") if part.strip()],
            "client_id": "loopwatch-emitter",
            "acks": "all",
            # Envelopes are already batched by the emitter; a short producer linger only coalesces
            # envelopes bound for the same partition into one request.
            "linger_ms": 5,
            "compression_type": "lz4" if has_lz4() else None,
            "max_request_size": max_request_size,
            "bootstrap_timeout_ms": 10_000,
            "max_block_ms": 10_000,
            "request_timeout_ms": 30_000,
            "delivery_timeout_ms": 120_000,
        }
        self._config.update(options or {})
        self._producer: KafkaProducer | None = None
        self._failed_at: float | None = None
        self._last_error: BaseException | None = None

    def connect(self) -> KafkaProducer:
        """The producer, built on first use; raises :class:`DeliveryError` while Kafka is unreachable."""
        if self._producer is not None:
            return self._producer
        if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_interval:
            raise DeliveryError(f"kafka unavailable: {self._last_error}")
        from kafka import KafkaProducer

        try:
            self._producer = KafkaProducer(**self._config)
        except Exception as exc:
            self._failed_at, self._last_error = time.monotonic(), exc
            raise DeliveryError(f"kafka unavailable: {exc!r}") from exc
        self._failed_at = self._last_error = None
        if self._on_connect is not None:
            self._on_connect()
        return self._producer

    def send(self, kind: Kind, key: str, body: bytes, count: int) -> None:
        topic = self._topics.inference if kind == "inference" else self._topics.feedback
        try:
            future = self.connect().send(topic, value=body, key=key.encode())
        except Exception as exc:  # metadata timeout, record too large, producer closed
            self._on_result(count, exc)
            return
        future.add_callback(lambda _metadata: self._on_result(count, None))
        future.add_errback(lambda exc: self._on_result(count, exc))

    def close(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # kafka-python fails (errbacks) whatever it could not deliver within the timeout.
            producer.close(timeout=max(timeout, 0.0))


class HttpTransport:
    """POSTs envelopes to the loopwatch API; retries what may succeed later, fails what never will.

    Connection errors, timeouts, 5xx and 429 are retried with exponential backoff (``Retry-After`` is
    honoured, capped); any other 4xx is the caller's mistake (bad key, bad field) and is failed at once
    with the server's message, which names the problem. ``abort`` cuts backoff short when the emitter is
    closing, so ``close(timeout)`` keeps its promise.
    """

    _PATHS: Mapping[Kind, str] = {"inference": "/v1/inferences", "feedback": "/v1/feedback"}

    def __init__(
        self,
        url: str,
        api_key: str,
        on_result: ResultCallback,
        *,
        abort: threading.Event,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        self._on_result = on_result
        self._abort = abort
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=timeout,
            headers={
                "authorization": f"Bearer {api_key}",
                "content-type": "application/json",
                "user-agent": "loopwatch-emitter",
            },
        )

    def send(self, kind: Kind, key: str, body: bytes, count: int) -> None:
        error: BaseException | None = None
        for attempt in range(1, self._max_attempts + 1):
            delay = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
            try:
                response = self._client.post(self._PATHS[kind], content=body)
            except httpx.HTTPError as exc:  # connect/read errors and timeouts: maybe transient
                error = exc
            except Exception as exc:  # anything else is not going to get better by retrying
                self._on_result(count, exc)
                return
            else:
                if response.is_success:
                    self._on_result(count, None)
                    return
                error = DeliveryError(
                    f"HTTP {response.status_code}: {_server_message(response)}",
                    status_code=response.status_code,
                )
                if response.status_code != 429 and response.status_code < 500:
                    break
                asked = retry_after_seconds(response.headers.get("retry-after"), cap=self._max_backoff)
                delay = max(delay, asked or 0.0)
            if attempt < self._max_attempts and self._abort.wait(delay):
                break
        self._on_result(count, error)

    def close(self, timeout: float) -> None:
        self._client.close()


def _server_message(response: httpx.Response, limit: int = 1_000) -> str:
    """The API's ``detail`` (it names the bad field and index), else the start of the raw body."""
    try:
        detail = response.json().get("detail", response.text)
    except Exception:
        detail = response.text
    return str(detail)[:limit]
