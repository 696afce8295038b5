"""Prometheus metrics of one loopwatch process; the only module that defines metric objects.

Every name starts with ``loopwatch_`` and carries its unit (``_seconds``); counters end in ``_total``.
The API serves them at ``/metrics``; a ``loopwatch worker`` process on ``LOOPWATCH_METRICS_PORT``
(``serve``). Each process has its own registry (prometheus_client's default), so a counter counts what
this process did: ``transport="http"`` events in an API process, ``transport="kafka"`` in a worker.

**Labels are bounded on purpose.** Every label combination is a time series that the process and
Prometheus keep forever, so a label may only take values the code chooses: ``kind``
(inference|feedback), ``transport`` (http|kafka), ``status`` (the few 4xx codes ingest answers),
``source`` (the decoder that wrote the dead letter: inference|feedback|otlp_traces|otlp_logs), ``signal``
(traces|logs), ``table`` (the three raw tables), ``channel`` (slack|webhook), ``event`` (alert|retrain),
``outcome`` (delivered|retried|failed), ``severity`` (info|warning|critical), and ``topic``/``partition``
(the worker's own two topics). Never a project, model, monitor id or error text: clients choose those, so
they grow without bound; per-model numbers live in ClickHouse (``window_stats``, ``alerts``, ``dead_letters``)
and the API.

**Ingest pays (almost) nothing.** Counters move once per request, message, flush, window or delivery
attempt, never per event (ingest runs at ~60k events/s). Gauges are not set on the hot path at all:
they are read at scrape time from the live objects (``watch_*``), held through weak references, so an
object that is gone (a test's pipeline, a replaced runner) drops out by itself.

Metric objects are module globals, as prometheus_client intends: importing this module registers them
once per process; nothing here does I/O until ``serve`` is called.
"""

from __future__ import annotations

import functools
import operator
import threading
import time
import weakref
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, TypeVar

import structlog
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.bus import Kind

if TYPE_CHECKING:
    from schemas.events import AlertEvent, DeadLetter


class FlushFigures(Protocol):
    """What ``flushed`` reads of a sink flush (``streams.sink.FlushStats``); metrics import nothing above them."""

    @property
    def inferences(self) -> int: ...
    @property
    def feedback(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...
    @property
    def seconds(self) -> float: ...


log = structlog.get_logger(__name__)

Transport = Literal["http", "kafka"]
Signal = Literal["traces", "logs"]  # OTLP signals whose items can be rejected (metrics are all dropped)
P = ParamSpec("P")
T = TypeVar("T")
OwnerT = TypeVar("OwnerT")

_KINDS: tuple[Kind, ...] = ("inference", "feedback")

# ------------------------------------------------------------------------------------------ ingest

EVENTS_ACCEPTED = Counter(
    "loopwatch_events_accepted_total",
    "Valid events taken in: answered 202 by this API (http) or decoded from the topics by this worker (kafka).",
    ["kind", "transport"],
)
EVENTS_REJECTED = Counter(
    "loopwatch_events_rejected_total",
    "Ingest requests refused with a 4xx (a request is all or nothing), by HTTP status.",
    ["kind", "status"],
)
DEAD_LETTERS = Counter(
    "loopwatch_dead_letters_total",
    "Items that could not be accepted and went to dead_letters (bad JSON, schema violations, oversize).",
    ["source"],
)
OTLP_REJECTED = Counter(
    "loopwatch_otlp_rejected_total",
    "GenAI spans (traces) and log records (logs) of OTLP exports that could not become events; each is "
    "answered in partial_success, logged with its reason (otlp.rejected) and kept as a dead letter.",
    ["signal"],
)
EVENTS_WRITTEN = Counter(
    "loopwatch_events_written_total", "Rows written to ClickHouse by the sink, by table.", ["table"]
)
REDACTION_SCANS = Counter(
    "loopwatch_redaction_scans_total",
    "Events scanned by redaction: by the API as it accepts them, or by a worker as it decodes a Kafka "
    "envelope the API did not mark as redacted (an SDK's); kafka_skipped: marked ones, not scanned again.",
    ["where"],
)

# ------------------------------------------------------------------------------------------ flushes

FLUSH_SECONDS = Histogram(
    "loopwatch_flush_seconds",
    "Duration of sink flushes that wrote rows (one insert per non-empty table).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
FLUSH_FAILURES = Counter(
    "loopwatch_flush_failures_total", "Sink flushes that failed; the buffers are kept and the flush retried."
)

# ------------------------------------------------------------------------------------------ windows

WINDOWS_CLOSED = Counter("loopwatch_windows_closed_total", "Windows closed into statistics.")
WINDOW_CLOSE_SECONDS = Histogram(
    "loopwatch_window_close_seconds",
    "Time to compute and write one closed window's statistics.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
WINDOW_CLOSE_FAILURES = Counter(
    "loopwatch_window_close_failures_total", "Windows whose statistics could not be computed or written."
)

# ------------------------------------------------------------------------------------------ alerts

ALERTS_FIRED = Counter("loopwatch_alerts_fired_total", "Alerts fired (stored, after dedup and cooldown).", ["severity"])
ALERT_DELIVERIES = Counter(
    "loopwatch_alert_deliveries_total",
    "Delivery attempts of alerts and retraining requests: delivered, retried (will try again) or failed (final).",
    ["channel", "event", "outcome"],
)

# Children bound once: ``labels()`` takes a lock and a dict lookup, the hot paths skip it.
_ACCEPTED = {
    (kind, transport): EVENTS_ACCEPTED.labels(kind, transport) for kind in _KINDS for transport in ("http", "kafka")
}
_WRITTEN = {table: EVENTS_WRITTEN.labels(table) for table in ("inferences", "feedback", "dead_letters")}


def events_accepted(kind: Kind, transport: Transport, count: int) -> None:
    """Hook: ``count`` valid events of ``kind`` taken in over ``transport`` (one call per request or batch)."""
    if count:
        _ACCEPTED[kind, transport].inc(count)


def redaction_scans(where: Literal["api", "kafka", "kafka_skipped"], count: int) -> None:
    """Hook: ``count`` events scanned (or, ``kafka_skipped``, trusted as already scanned) by redaction."""
    if count:
        REDACTION_SCANS.labels(where).inc(count)


def events_rejected(kind: Kind, status: int) -> None:
    """Hook: an ingest request of ``kind`` was refused with ``status``."""
    EVENTS_REJECTED.labels(kind, str(status)).inc()


def otlp_rejected(signal: Signal, count: int) -> None:
    """Hook: an OTLP export of ``signal`` had ``count`` items that could not become events."""
    OTLP_REJECTED.labels(signal).inc(count)


def dead_lettered(letters: Sequence[DeadLetter]) -> None:
    """Hook: ``letters`` go to the dead-letter table (counted by the decoder that made them)."""
    for source, count in Tally(letter.source for letter in letters).items():
        DEAD_LETTERS.labels(source).inc(count)


def flushed(stats: FlushFigures) -> None:
    """Hook: a sink flush returned; count its rows and time it (empty flushes are not timed)."""
    if not stats.total:
        return
    _WRITTEN["inferences"].inc(stats.inferences)
    _WRITTEN["feedback"].inc(stats.feedback)
    _WRITTEN["dead_letters"].inc(stats.dead_letters)
    FLUSH_SECONDS.observe(stats.seconds)


def flush_failed() -> None:
    """Hook: a sink flush raised."""
    FLUSH_FAILURES.inc()


def timed_window_close(close: Callable[P, T]) -> Callable[P, T]:
    """Decorator for the function that closes one window: counts it, times it, counts its failures."""

    @functools.wraps(close)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        try:
            result = close(*args, **kwargs)
        except Exception:
            WINDOW_CLOSE_FAILURES.inc()
            raise
        WINDOW_CLOSE_SECONDS.observe(time.perf_counter() - started)
        WINDOWS_CLOSED.inc()
        return result

    return wrapper


def alerts_fired(alerts: Iterable[AlertEvent]) -> None:
    """Hook: these alerts were stored and will be dispatched."""
    for severity, count in Tally(alert.severity for alert in alerts).items():
        ALERTS_FIRED.labels(severity).inc(count)


class _Attempt(Protocol):
    """What ``delivery_attempted`` reads of ``streams.delivery.sender.DeliveryAttempt``."""

    @property
    def channel(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def succeeded(self) -> bool: ...
    @property
    def final(self) -> bool: ...


def delivery_attempted(attempt: _Attempt) -> None:
    """Hook: one delivery attempt ended. ``retried``: it failed but another attempt follows."""
    outcome = "delivered" if attempt.succeeded else "failed" if attempt.final else "retried"
    ALERT_DELIVERIES.labels(attempt.channel, attempt.event_type, outcome).inc()


# ------------------------------------------------------------------------------------------ gauges


Sample = tuple[tuple[str, ...], float]  # label values, value
_Read = Callable[[Any], Iterable[Sample]]


class _ScrapeTimeGauges(Collector):
    """Gauges computed at scrape time from watched objects, summed over the live ones.

    A process normally holds one pipeline, one bus and one consumer; tests hold several, some already
    stopped. Owners are referenced weakly and forgotten once collected; a reader that raises (a
    consumer mid-rebalance) is skipped for that scrape rather than failing the whole exposition.
    """

    def __init__(
        self, gauges: dict[str, tuple[str, tuple[str, ...]]], combine: Callable[[float, float], float] = operator.add
    ) -> None:
        self._gauges = gauges
        self._combine = combine
        self._watched: dict[str, list[tuple[weakref.ref[Any], _Read]]] = {name: [] for name in gauges}
        self._lock = threading.Lock()

    def watch(self, name: str, owner: object, read: _Read) -> None:
        with self._lock:
            self._watched[name].append((weakref.ref(owner), read))

    def _live(self, name: str) -> list[tuple[Any, _Read]]:
        with self._lock:
            entries = [(ref(), read) for ref, read in self._watched[name]]
            self._watched[name] = [(ref, read) for ref, read in self._watched[name] if ref() is not None]
        return [(owner, read) for owner, read in entries if owner is not None]

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, labels) in self._gauges.items():
            yield GaugeMetricFamily(name, documentation, labels=labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, labels) in self._gauges.items():
            totals: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}
            for owner, read in self._live(name):
                try:
                    samples = list(read(owner))
                except Exception as exc:
                    log.warning("metric_read_failed", metric=name, error=f"{type(exc).__name__}: {exc}"[:300])
                    continue
                for values, value in samples:
                    totals[values] = self._combine(totals[values], value) if values in totals else value
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for values, value in sorted(totals.items()):
                family.add_metric(list(values), value)
            yield family


_GAUGES = _ScrapeTimeGauges(
    {
        "loopwatch_queue_depth": ("Batches waiting in the in-process bus (embedded mode).", ()),
        "loopwatch_sink_pending_events": ("Events and dead letters buffered in the sink, not yet written.", ()),
        "loopwatch_windows_pending": (
            "Windows open or waiting to close (events seen, statistics not yet computed).",
            (),
        ),
        "loopwatch_kafka_consumer_lag": (
            "Messages after this worker's committed offset: highwater - committed, per assigned partition.",
            ("topic", "partition"),
        ),
    }
)
REGISTRY.register(_GAUGES)
# One engine per process: every live Storage reads the same figure, so the largest reading, not a sum.
_ENGINE_GAUGES = _ScrapeTimeGauges(
    {
        "loopwatch_storage_memory_bytes": (
            "Memory embedded chDB tracks in this process (queries, merges, caches); 0 with a ClickHouse server.",
            (),
        ),
    },
    combine=max,
)
REGISTRY.register(_ENGINE_GAUGES)


def watch_queue(owner: OwnerT, depth: Callable[[OwnerT], int]) -> None:
    """Hook: report ``depth(owner)`` as ``loopwatch_queue_depth`` while ``owner`` lives."""
    _GAUGES.watch("loopwatch_queue_depth", owner, lambda live: [((), float(depth(live)))])


def watch_pipeline(owner: OwnerT, buffered: Callable[[OwnerT], int], windows: Callable[[OwnerT], int | None]) -> None:
    """Hook: report ``owner``'s buffered events and its pending windows (None: it computes none) while it lives."""
    _GAUGES.watch("loopwatch_sink_pending_events", owner, lambda live: [((), float(buffered(live)))])
    _GAUGES.watch("loopwatch_windows_pending", owner, lambda live: _sample(windows(live)))


def watch_storage(owner: OwnerT, tracked: Callable[[OwnerT], int | None]) -> None:
    """Hook: report ``tracked(owner)`` (embedded chDB's tracked memory, None for a server) while it lives."""
    _ENGINE_GAUGES.watch("loopwatch_storage_memory_bytes", owner, lambda live: _sample(tracked(live)))


def _sample(value: int | None) -> list[Sample]:
    return [] if value is None else [((), float(value))]


def watch_consumer_lag(consumer: object, topics: Sequence[str]) -> None:
    """Hook: report the lag of a started faust consumer's partitions of ``topics`` while it lives."""
    _GAUGES.watch("loopwatch_kafka_consumer_lag", consumer, lambda live: _consumer_lag(live, frozenset(topics)))


def _consumer_lag(consumer: Any, topics: frozenset[str]) -> list[Sample]:
    """``highwater - committed`` from memory only (no broker round trip at scrape time).

    The highwater comes with every fetch response (``consumer.highwater``). The committed offset is
    faust's own record (``_committed_offset``, set from the broker when a partition is assigned and
    after each commit); faust records an offset of 0 as None, and a partition nobody committed on is
    counted from 0 too (exact unless retention already deleted its oldest messages). Partitions
    without a known highwater (nothing fetched yet) are left out. Raises while the consumer is not
    started: the collector then skips it.
    """
    committed: dict[Any, int | None] = getattr(consumer, "_committed_offset", {})
    samples: list[Sample] = []
    for tp in consumer.assignment():
        if tp.topic not in topics:
            continue  # faust's own internal topics
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        samples.append(((tp.topic, str(tp.partition)), float(max(0, highwater - (committed.get(tp) or 0)))))
    return samples


# ------------------------------------------------------------------------------------------ exposition


def serve(host: str, port: int | None) -> Callable[[], None] | None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (``loopwatch worker``); returns a stop
    function, or None when ``port`` is unset."""
    if port is None:
        return None
    server, thread = start_http_server(port, addr=host)
    log.info("metrics_serving", host=host, port=server.server_port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
