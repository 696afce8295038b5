"""Deliver stored alerts and retraining requests to their monitors' channels.

``dispatch`` sends every (event, channel) pair as its own asyncio task, at most ``max_concurrency`` at
a time, through ``streams.delivery.Deliverer`` (retries, backoff, signing, SSRF guard). Every attempt
is written to ``alert_deliveries`` from a worker thread as it happens, which is also what makes an
alert's delivery status ``delivered`` or ``failed``. When a ``publish`` callable is given (distributed
mode) each event is also handed to it first — ``publish("alerts" | "retrain", event)`` — so the
transport (Kafka) stays the caller's business.

Nothing here raises into the caller: a broken channel, receiver, recorder or publisher is logged and
costs that one delivery. Events whose delivery never finished (the process died, a hand-off was lost)
are found in storage and sent again by ``resume_pending``; every send carries the same
``Idempotency-Key`` (the alert or request id), so receivers can drop the duplicates this may create.

A dispatcher belongs to one event loop (its HTTP client and semaphore do); ``submit`` is the
thread-safe way in from the worker threads that evaluate monitors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import httpx
import structlog

from schemas.events import AlertEvent, RetrainEvent
from schemas.monitors import Monitor
from schemas.settings import Settings
from schemas.topics import Topics
from streams.delivery import Deliverer, DeliveryAttempt, DeliveryOutcome
from streams.delivery.channels import SlackChannel, WebhookChannel
from streams.monitors.alerts import AlertStore

log = structlog.get_logger(__name__)

TopicKind = Literal["alerts", "retrain"]
Publish = Callable[[TopicKind, AlertEvent | RetrainEvent], Awaitable[object]]
MonitorLookup = Callable[[str, str], Monitor | None]


def topic_publisher(send: Callable[[str, bytes, bytes], Awaitable[object]], topics: Topics) -> Publish:
    """A ``Publish`` that sends events as JSON to the alerts/retrain topics, keyed ``project/model``.

    ``send(topic, value, key)`` is the transport: ``KafkaPublisher.send_raw`` in an API process, or
    ``lambda topic, value, key: worker.app.send(topic, key=key, value=value)`` in a faust worker.
    """

    async def publish(kind: TopicKind, event: AlertEvent | RetrainEvent) -> None:
        topic = topics.alerts if kind == "alerts" else topics.retrain
        await send(topic, event.model_dump_json().encode(), f"{event.project}/{event.model}".encode())

    return publish


def _monitor_id(event: AlertEvent | RetrainEvent) -> str:
    if isinstance(event, AlertEvent):
        return event.monitor_id
    return str(event.evidence.get("monitor_id", ""))


class AlertDispatcher:
    """Sends events to channels concurrently and records every attempt."""

    def __init__(
        self,
        alerts: AlertStore,
        settings: Settings,
        *,
        publish: Publish | None = None,
        client: httpx.AsyncClient | None = None,
        max_concurrency: int = 16,
    ) -> None:
        self._alerts = alerts
        self._settings = settings
        self._publish = publish
        self._owns_client = client is None
        self._client = client
        self._max_concurrency = max_concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to the running (or given) loop: ``submit`` schedules there."""
        self._loop = loop or asyncio.get_running_loop()
        self._closed = False

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No environment proxies: a proxy would resolve targets itself and bypass the SSRF guard.
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a tracked task (awaited by ``aclose``). Call on the loop."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def submit(
        self, alerts: Sequence[AlertEvent], retrains: Sequence[RetrainEvent], monitors: Iterable[Monitor]
    ) -> concurrent.futures.Future[Any] | None:
        """Schedule ``dispatch`` on the bound loop from any thread; never blocks, never raises.

        Without a bound loop the events stay stored and undelivered until ``resume_pending`` runs.
        """
        if not alerts and not retrains:
            return None
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed:
            log.error("dispatch_unscheduled", reason="no running dispatcher", alerts=len(alerts), retrains=len(retrains))
            return None
        monitors = list(monitors)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def start() -> None:
            task = self.spawn(self.dispatch(alerts, retrains, monitors))

            def done(task: asyncio.Task[Any]) -> None:
                if future.cancelled():
                    return
                if task.cancelled():
                    future.cancel()
                elif task.exception() is not None:
                    future.set_exception(task.exception())  # type: ignore[arg-type]
                else:
                    future.set_result(task.result())

            task.add_done_callback(done)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed meanwhile
            log.error("dispatch_unscheduled", reason="event loop closed", alerts=len(alerts), retrains=len(retrains))
            return None
        return future

    async def aclose(self, timeout: float = 10.0) -> None:
        """Let running deliveries finish for up to ``timeout`` seconds, cancel the rest, close HTTP.

        Events submitted afterwards stay stored and undelivered until ``resume_pending``.
        """
        self._closed = True
        await asyncio.sleep(0)  # let deliveries submitted from threads just before this start
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
                log.warning("dispatch_cancelled_at_shutdown", tasks=len(still))
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        self._semaphore = None

    # ------------------------------------------------------------------ delivery

    async def dispatch(
        self,
        alerts: Sequence[AlertEvent],
        retrains: Sequence[RetrainEvent],
        monitors: Iterable[Monitor],
        *,
        only: dict[str, list[int]] | None = None,
    ) -> list[DeliveryOutcome]:
        """Publish (when configured) and deliver each event to its monitor's channels.

        ``monitors`` are looked up by (project, monitor_id); a retraining request names its monitor in
        ``evidence["monitor_id"]``. ``only`` restricts an event id to some channel indexes (resuming).
        Returns one outcome per delivery; never raises (cancellation still propagates).
        """
        try:
            by_key = {(monitor.project, monitor.monitor_id): monitor for monitor in monitors}
            events: list[AlertEvent | RetrainEvent] = [*alerts, *retrains]
            if self._publish is not None:
                await asyncio.gather(*(self._publish_one(event) for event in events))
            jobs = []
            for event in events:
                monitor = by_key.get((event.project, _monitor_id(event)))
                if monitor is None:
                    log.error("dispatch_no_monitor", project=event.project, monitor_id=_monitor_id(event))
                    continue
                target = event.alert_id if isinstance(event, AlertEvent) else event.request_id
                for index, channel in enumerate(monitor.channels):
                    if only is None or index in only.get(target, []):
                        jobs.append(self._deliver(event, monitor.monitor_id, index, channel))
            results = await asyncio.gather(*jobs, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dispatch_failed", alerts=len(alerts), retrains=len(retrains))
            return []
        outcomes = []
        for result in results:
            if isinstance(result, DeliveryOutcome):
                outcomes.append(result)
            elif isinstance(result, asyncio.CancelledError):
                raise result
            elif isinstance(result, BaseException):
                log.error("delivery_crashed", error=repr(result)[:500])
        return outcomes

    async def _publish_one(self, event: AlertEvent | RetrainEvent) -> None:
        assert self._publish is not None
        kind: TopicKind = "alerts" if isinstance(event, AlertEvent) else "retrain"
        try:
            await self._publish(kind, event)
        except Exception:  # delivery to channels must not depend on the bus
            log.exception("publish_failed", topic_kind=kind, project=event.project)

    async def _deliver(
        self, event: AlertEvent | RetrainEvent, monitor_id: str, index: int, channel: SlackChannel | WebhookChannel
    ) -> DeliveryOutcome:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
        async with self._semaphore:
            deliverer = Deliverer.from_settings(
                self._settings, client=self._http(), on_attempt=partial(self._record, event.project, monitor_id, index)
            )
            return await deliverer.deliver(event, channel)

    async def _record(self, project: str, monitor_id: str, index: int, attempt: DeliveryAttempt) -> None:
        await asyncio.to_thread(self._alerts.record_attempt, project, monitor_id, index, attempt)

    # ------------------------------------------------------------------ recovery

    async def resume_pending(
        self,
        lookup: MonitorLookup,
        *,
        older_than: timedelta = timedelta(minutes=10),
        within: timedelta = timedelta(days=1),
    ) -> int:
        """Deliver again, to the channels that have no final attempt, what fired between ``within`` and
        ``older_than`` ago (younger ones may still be in flight). Returns how many events it resent."""
        now = datetime.now(UTC)
        try:
            alert_rows = await asyncio.to_thread(
                self._alerts.undelivered, "alerts", since=now - within, until=now - older_than
            )
            retrain_rows = await asyncio.to_thread(
                self._alerts.undelivered, "retrain_requests", since=now - within, until=now - older_than
            )
            if not alert_rows and not retrain_rows:
                return 0
            alerts, retrains, monitors, only = await asyncio.to_thread(
                self._load_pending, lookup, alert_rows, retrain_rows
            )
        except Exception:
            log.exception("resume_pending_failed")
            return 0
        log.warning("delivery_resumed", alerts=len(alerts), retrains=len(retrains))
        await self.dispatch(alerts, retrains, monitors, only=only)
        return len(alerts) + len(retrains)

    def _load_pending(
        self, lookup: MonitorLookup, alert_rows: list[dict[str, Any]], retrain_rows: list[dict[str, Any]]
    ) -> tuple[list[AlertEvent], list[RetrainEvent], list[Monitor], dict[str, list[int]]]:
        only: dict[str, list[int]] = {}
        monitors: dict[tuple[str, str], Monitor] = {}
        alerts: list[AlertEvent] = []
        retrains: list[RetrainEvent] = []
        for row in [*alert_rows, *retrain_rows]:
            key = (row["project"], row["monitor_id"])
            if key not in monitors:
                monitor = lookup(*key)
                if monitor is None:
                    log.error("resume_no_monitor", project=key[0], monitor_id=key[1], target_id=row["target_id"])
                    continue
                monitors[key] = monitor
            only[row["target_id"]] = row["missing"]
        for row in alert_rows:
            if (row["project"], row["monitor_id"]) in monitors:
                found = self._alerts.get_alert(row["project"], row["target_id"])
                if found is not None:
                    fields = set(AlertEvent.model_fields)
                    alerts.append(AlertEvent.model_validate({k: v for k, v in found.items() if k in fields}))
        for row in retrain_rows:
            if (row["project"], row["monitor_id"]) in monitors:
                found_retrains = self._alerts.list_retrains(row["project"], request_id=row["target_id"], limit=1)
                fields = set(RetrainEvent.model_fields)
                retrains += [RetrainEvent.model_validate({k: v for k, v in r.items() if k in fields}) for r in found_retrains]
        return alerts, retrains, list(monitors.values()), only
