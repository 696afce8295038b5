"""The in-app emitter: log inferences and feedback without ever blocking or breaking the host app.

Shape: the calling thread validates the event (so a bad call is reported where it happens and later
mutation of the caller's dicts cannot leak in), then appends it to a bounded buffer and returns. One
daemon thread drains the buffer, packs envelopes and hands them to the transport. The buffer bound
covers everything not yet settled (buffered *and* in flight), so memory stays bounded even when the
broker or API is down: past the bound, new events are dropped and counted, never waited for.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import chain
from types import TracebackType
from typing import Any, Literal

import structlog
from pydantic import TypeAdapter, ValidationError

from loopwatch_sdk._stats import EmitterStats, Ledger
from loopwatch_sdk._throttle import Throttle
from loopwatch_sdk._track import Tracker
from loopwatch_sdk._transports import (
    HTTP_MAX_BATCH_EVENTS,
    KAFKA_MAX_REQUEST_SIZE,
    HttpTransport,
    KafkaTransport,
    Transport,
)
from loopwatch_sdk.events import FeedbackEvent, InferenceEvent, ProjectName, new_id
from loopwatch_sdk.problems import problem_lines
from loopwatch_sdk.wire import Kind, Topics, feedback_envelopes, inference_envelopes

log = structlog.get_logger("loopwatch.emitter")

_PROJECT: TypeAdapter[str] = TypeAdapter(ProjectName)
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._\-]{1,200}$")
Event = InferenceEvent | FeedbackEvent


def _json(event: Event) -> bytes:
    """One event as the worker and the API decode it (``TypeAdapter(list[Event])`` item by item)."""
    return event.model_dump_json().encode()


class Emitter:
    """Sends inference and feedback events to loopwatch over Kafka or HTTP, in the background.

    Exactly one transport: ``kafka_bootstrap`` (``host:port[,host:port]``; messages go to
    ``Topics(topic_prefix)``) or ``http_url`` plus ``api_key`` (a project key of the loopwatch API).
    Construction validates its arguments and raises ``ValueError``; after that no method raises into
    the caller: invalid events are counted in ``stats.invalid``, a full buffer counts ``stats.dropped``,
    undeliverable events count ``stats.failed``.

    Use it as a long-lived object (one per process), or as a context manager. It is closed at
    interpreter exit on a best-effort basis; call ``close()`` yourself to be sure the tail is sent.
    """

    def __init__(
        self,
        project: str,
        *,
        kafka_bootstrap: str | None = None,
        topic_prefix: str = "loopwatch",
        http_url: str | None = None,
        api_key: str | None = None,
        max_buffer: int = 100_000,
        batch_max_events: int = 1_000,
        batch_max_bytes: int = 900_000,
        linger_seconds: float = 0.2,
        default_model: str | None = None,
        kafka_options: Mapping[str, Any] | None = None,
        http_timeout: float = 10.0,
        http_max_attempts: int = 4,
        exit_timeout: float = 5.0,
    ) -> None:
        try:
            self._project: str = _PROJECT.validate_python(project)
        except ValidationError as exc:
            raise ValueError(f"invalid project name {project!r}: {exc.errors()[0]['msg']}") from exc
        if (kafka_bootstrap is None) == (http_url is None):
            raise ValueError("configure exactly one transport: kafka_bootstrap=... or http_url=... (with api_key)")
        if http_url is not None and not api_key:
            raise ValueError("http_url needs api_key (a project key from `loopwatch keys create`)")
        if http_url is not None and not http_url.startswith(("http://", "https://")):
            raise ValueError(f"http_url must start with http:// or https://, got {http_url!r}")
        if kafka_bootstrap is not None and not kafka_bootstrap.strip():
            raise ValueError("kafka_bootstrap is empty")
        if not _TOPIC_PREFIX.match(topic_prefix):
            raise ValueError(f"topic_prefix {topic_prefix!r} is not a valid Kafka topic name part")
        for name, value, low in (
            ("max_buffer", max_buffer, 1),
            ("batch_max_events", batch_max_events, 1),
            ("batch_max_bytes", batch_max_bytes, 1_024),
            ("http_max_attempts", http_max_attempts, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        if linger_seconds < 0 or http_timeout <= 0 or exit_timeout < 0:
            raise ValueError("linger_seconds and exit_timeout must be >= 0 and http_timeout > 0")

        self._default_model = default_model
        self._max_buffer = max_buffer
        self._max_bytes = batch_max_bytes
        self._max_events = batch_max_events if http_url is None else min(batch_max_events, HTTP_MAX_BATCH_EVENTS)
        self._linger = linger_seconds
        self._take_max = self._max_events * 16  # per wake-up: several full envelopes across models
        self._exit_timeout = exit_timeout

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the worker waits here for events / flush / close
        self._settled = threading.Condition(self._lock)  # flushers wait here for pending == 0
        self._buffer: deque[Event] = deque()
        self._ledger = Ledger()
        self._flushing = 0
        self._stopping = False
        self._closed = False
        self._abort = threading.Event()  # set when close() gives up waiting: stop retrying
        self._close_deadline = float("inf")
        self._throttle = Throttle()

        self._transport: Transport
        if kafka_bootstrap is not None:
            self._transport = KafkaTransport(
                kafka_bootstrap,
                Topics(topic_prefix),
                self._on_result,
                max_request_size=max(KAFKA_MAX_REQUEST_SIZE, batch_max_bytes + 64 * 1024),
                options=kafka_options,
                on_connect=self._reregister_atexit,
            )
        else:
            assert http_url is not None
            assert api_key is not None
            self._transport = HttpTransport(
                http_url,
                api_key,
                self._on_result,
                abort=self._abort,
                timeout=http_timeout,
                max_attempts=http_max_attempts,
            )
        self._thread = threading.Thread(target=self._run, name=f"loopwatch-emitter[{self._project}]", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    # ------------------------------------------------------------------ public API

    @property
    def project(self) -> str:
        return self._project

    @property
    def stats(self) -> EmitterStats:
        """A consistent snapshot of the counters (see :class:`EmitterStats`)."""
        with self._lock:
            return self._ledger.snapshot()

    def log_inference(
        self,
        *,
        model: str | None = None,
        prompt: str | None = None,
        response: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        latency_ms: float | None = None,
        status: Literal["ok", "error"] = "ok",
        error_type: str | None = None,
        cost_usd: float | None = None,
        model_version: str | None = None,
        provider: str | None = None,
        features: Mapping[str, Any] | None = None,
        prediction: Any = None,
        probabilities: Mapping[str, float] | None = None,
        embedding: list[float] | None = None,
        tags: Mapping[str, str] | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Queue one inference; returns its id (made here when not given, so a resend is idempotent).

        ``model`` defaults to the emitter's ``default_model``; ``timestamp`` to now (UTC). Never raises:
        an event that fails validation is counted in ``stats.invalid`` and logged without its content.
        """
        # the parameters are the event's fields (tests/sdk/test_emitter.py keeps them in step with the contract)
        values: dict[str, Any] = {name: value for name, value in locals().items() if name != "self"}
        return self._submit_inference({name: value for name, value in values.items() if value is not None})

    def log_feedback(
        self,
        inference_id: str,
        *,
        kind: str,
        value: bool | float | str | None = None,
        text: str | None = None,
        name: str | None = None,
        source: str = "user",
        user_id: str | None = None,
        feedback_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Queue feedback on an earlier inference (by its id); returns the feedback id. Never raises.

        ``kind`` is thumbs (value ±1 or a bool), rating (1-5), label (the true label), score (a number
        with ``name``), correction or comment (``text``).
        """
        feedback_id = feedback_id or new_id()
        try:
            event = FeedbackEvent.model_validate(
                {
                    "feedback_id": feedback_id,
                    "project": self._project,
                    "inference_id": inference_id,
                    "timestamp": timestamp or datetime.now(UTC),
                    "kind": kind,
                    "value": value,
                    "text": text,
                    "name": name,
                    "source": source,
                    "user_id": user_id,
                }
            )
        except Exception as exc:
            self._invalid("feedback", exc)
        else:
            self._enqueue(event)
        return str(feedback_id)

    def track(self, *, model: str | None = None, prompt: str | None = None, **fields: Any) -> Tracker:
        """Time one model call: ``with emitter.track(model=m, prompt=p) as call: call.response = …``.

        The inference is logged when the block ends, with ``latency_ms`` measured and, if the block
        raised, ``status="error"`` and ``error_type`` set (the exception propagates unchanged).
        ``fields`` are any other ``InferenceEvent`` fields; ``.event_id`` is known up front.
        """
        event_id = str(fields.pop("event_id", None) or new_id())
        return Tracker(
            self._submit_inference,
            self._invalid,
            event_id,
            {"model": model, "prompt": prompt, **fields},
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued so far; True when nothing is pending (all sent or failed) in time."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            self._flushing += 1
            self._work.notify_all()
            try:
                while self._ledger.pending > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._settled.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then stop the thread and release the producer/client, all within ``timeout``.

        Events still buffered when the time is up are counted as failed. Idempotent; new events after
        ``close`` are dropped.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        deadline = time.monotonic() + max(timeout, 0.0)
        flushed = self.flush(timeout)
        self._close_deadline = deadline
        self._abort.set()
        with self._lock:
            self._stopping = True
            self._work.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(max(deadline - time.monotonic(), 0.0) + 0.1)
        with self._lock:
            abandoned = len(self._buffer)
            self._buffer.clear()
            self._ledger.failed += abandoned
            stats = self._ledger.snapshot()
            self._settled.notify_all()
        if not flushed or self._thread.is_alive():
            log.warning(
                "emitter_closed_with_losses",
                project=self._project,
                abandoned=abandoned,
                thread_stopped=not self._thread.is_alive(),
                **dataclasses.asdict(stats),
            )

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Emitter project={self._project!r} {self.stats}>"

    # ------------------------------------------------------------------ calling thread

    def _submit_inference(self, values: dict[str, Any]) -> str:
        """Validate and queue; ``track`` calls this directly so its unknown fields become invalid events."""
        event_id = values.get("event_id") or new_id()
        try:
            values = {**values, "event_id": event_id, "project": self._project}
            if values.get("timestamp") is None:
                values["timestamp"] = datetime.now(UTC)
            if values.get("model") is None and self._default_model is not None:
                values["model"] = self._default_model
            event = InferenceEvent.model_validate(values)
        except Exception as exc:
            self._invalid("inference", exc)
        else:
            self._enqueue(event)
        return str(event_id)

    def _enqueue(self, event: Event) -> None:
        with self._lock:
            if self._closed or self._ledger.pending >= self._max_buffer:
                self._ledger.dropped += 1
                reason = "closed" if self._closed else "buffer_full"
            else:
                self._ledger.accepted += 1
                self._buffer.append(event)
                size = len(self._buffer)
                if size == 1 or size == self._max_events:  # start the linger clock / a batch is full
                    self._work.notify()
                return
        held = self._throttle.allow(f"dropped:{reason}")
        if held is not None:
            log.warning("emitter_event_dropped", project=self._project, reason=reason, also_dropped=held)

    def _invalid(self, kind: Kind, exc: Exception) -> None:
        with self._lock:
            self._ledger.invalid += 1
        held = self._throttle.allow(f"invalid:{kind}")
        if held is None:
            return
        # Locations and messages only: inputs (prompts, responses) never reach the logs.
        errors = problem_lines(exc, whole="(event)") if isinstance(exc, ValidationError) else [type(exc).__name__]
        log.warning("emitter_event_invalid", project=self._project, kind=kind, errors=errors, also_invalid=held)

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        connect = getattr(self._transport, "connect", None)
        if connect is not None:  # connect early so the first events do not wait for the bootstrap
            try:
                connect()
            except Exception as exc:
                log.warning("emitter_transport_unavailable", project=self._project, error=str(exc)[:1_000])
        while (events := self._take()) is not None:
            self._deliver(events)
        try:
            self._transport.close(max(self._close_deadline - time.monotonic(), 0.0))
        except Exception as exc:
            log.warning("emitter_transport_close_failed", project=self._project, error=repr(exc)[:500])

    def _take(self) -> list[Event] | None:
        """The next batch, after lingering for a full one; ``None`` when it is time to stop."""
        with self._lock:
            while not self._buffer:
                if self._stopping:
                    return None
                self._work.wait()
            deadline = time.monotonic() + self._linger
            while len(self._buffer) < self._max_events and not (self._flushing or self._stopping):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(remaining)
            if self._abort.is_set():
                return None  # close() has flushed or given up: anything left is counted as failed there
            count = min(len(self._buffer), self._take_max)
            return [self._buffer.popleft() for _ in range(count)]

    def _deliver(self, events: list[Event]) -> None:
        handed = 0
        try:
            inferences = [event for event in events if isinstance(event, InferenceEvent)]
            feedback = [event for event in events if isinstance(event, FeedbackEvent)]
            limits = {"max_events": self._max_events, "max_bytes": self._max_bytes}
            for envelope in chain(
                inference_envelopes(inferences, _json, **limits),
                feedback_envelopes(feedback, _json, **limits),
            ):
                handed += envelope.count
                self._transport.send(envelope.kind, envelope.key, envelope.body, envelope.count)
        except Exception as exc:  # a bug, not a delivery problem: still settle every event once
            self._on_result(len(events) - handed, exc)

    def _on_result(self, count: int, error: BaseException | None) -> None:
        """Settle ``count`` events; runs on the emitter thread (HTTP) or the producer's thread (Kafka)."""
        if count <= 0:
            return
        with self._lock:
            if error is None:
                self._ledger.sent += count
            else:
                self._ledger.failed += count
            if self._ledger.pending <= 0:
                self._settled.notify_all()
        if error is not None:
            self._log_failure(count, error)

    def _log_failure(self, count: int, error: BaseException) -> None:
        held = self._throttle.allow("failed")
        if held is not None:
            log.warning(
                "emitter_delivery_failed",
                project=self._project,
                events=count,
                error_type=type(error).__name__,
                error=str(error)[:1_000],
                status_code=getattr(error, "status_code", None),
                also_failed_messages=held,
            )

    def _reregister_atexit(self) -> None:
        """Run our exit hook before kafka-python's (atexit is LIFO), so the final flush has a producer."""
        if not self._closed:
            atexit.unregister(self._close_at_exit)
            atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing useful left to do with it
            self.close(self._exit_timeout)
