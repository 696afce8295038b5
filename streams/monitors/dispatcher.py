"""Deliver stored alerts and retraining requests to their monitors' channels.

``dispatch`` sends every (event, channel) pair as its own asyncio task, at most ``max_concurrency`` at
a time, through ``streams.delivery.Deliverer`` (retries, backoff, signing, SSRF guard). Every attempt
is written to ``alert_deliveries`` from a worker thread as it happens, which is also what makes an
alert's delivery status ``delivered`` or ``failed``. When a ``publish`` callable is given (distributed
mode) each event is also handed to it first — ``publish("alerts" | "retrain", event)`` — so the
transport (Kafka) stays the caller's business.

Nothing here raises into the caller: a broken channel, receiver, recorder or publisher is logged and
costs that one delivery. Events whose delivery never finished (the process died, a hand-off was lost)
are found in storage and sent again by ``resume_pending``, only to the channels still owed one and
never once the alert is acknowledged; every send carries the same ``Idempotency-Key`` (the alert or
request id), so receivers can drop the duplicates this may create (a 2xx that arrived just before a
crash, before its attempt was stored).

Across processes each (event, channel) delivery is claimed before it is sent (``Claims``, kind
``delivery``, key ``target/channel``): of processes dispatching or resuming the same event, one sends.
A resume takes over a claim only when its holder is gone (a dead pid on this host) or older than
``STALE_AFTER``, with the claim's next generation, which again only one process wins.

Grouped notifications: an alert bound for a Slack, webhook or email channel waits
``LOOPWATCH_GROUP_WAIT_SECONDS`` (default 10 s: windows of every model close in the same pass of the
window closer, a few seconds apart) for the other alerts its monitor fires for the same window (other
models, other entities), then the alerts still owed that channel go out as ONE message (``AlertGroup``)
listing them; an email channel with ``digest_minutes`` waits instead until the end of its digest period
(fired-at time, aligned to the epoch) and lists what fired in it. A lone alert is sent as itself.
Across processes the members are read from storage (every process stores its alerts before it
dispatches them), and the group is claimed (``group/…``): the winner claims and sends every member;
a process that loses it waits once more, then claims those of its own alerts nobody holds, so one
stored after the winner read (a late window) goes out in a second, smaller message rather than not at
all. Each alert keeps its own row, delivery status and attempts (the group's attempt is stored once per
alert). PagerDuty channels are never grouped: each alert is its own incident, resolved on its own.

A dispatcher belongs to one event loop (its HTTP client and semaphore do); ``submit`` is the
thread-safe way in from the worker threads that evaluate monitors (``asyncio.run_coroutine_threadsafe``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import httpx
import structlog
from loopwatch_sdk.wire import model_key

from schemas.channels import AnyChannel, EmailChannel, PagerDutyChannel
from schemas.events import AlertEvent, AlertGroup, AlertResolved, RetrainEvent
from schemas.monitors import Monitor
from schemas.settings import Settings
from schemas.topics import Topics
from streams.delivery import Deliverer, DeliveryAttempt, DeliveryOutcome
from streams.monitors.alerts import AlertStore
from streams.monitors.training import with_dataset
from streams.storage import deliveries as delivery_rows
from streams.storage import generation
from streams.storage.deliveries import Pending

log = structlog.get_logger(__name__)

TopicKind = Literal["alerts", "retrain"]
Event = AlertEvent | RetrainEvent | AlertResolved
Publish = Callable[[TopicKind, Event], Awaitable[object]]
MonitorLookup = Callable[[str, str], Monitor | None]
# What a periodic resume leaves alone: another process sharing the store may still be delivering it
# (a delivery retries for a few minutes at most). Start-up does not wait (``resume_pending``).
STALE_AFTER = timedelta(minutes=10)
GROUP_LOOKBACK = timedelta(hours=1)  # how long before its first member a window group's alerts may have fired
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(eq=False)
class _Group:
    """Alerts of one monitor waiting to go to one channel as one message."""

    project: str
    monitor: Monitor
    index: int
    channel: AnyChannel
    start: datetime  # the window's start, or the digest period's
    end: datetime
    digest_minutes: int | None
    since: datetime  # lower bound of the members' fired_at
    done: asyncio.Future[DeliveryOutcome | None]
    local: set[str] = field(default_factory=set)  # alert ids this process was asked to deliver

    @property
    def key(self) -> tuple[str, str, int, datetime, int | None]:
        return (self.project, self.monitor.monitor_id, self.index, self.start, self.digest_minutes)

    @property
    def claim_key(self) -> str:
        kind = f"digest{self.digest_minutes}" if self.digest_minutes else "window"
        return f"group/{self.monitor.monitor_id}/{self.index}/{kind}/{self.start.isoformat()}"

    def member(self, alert: AlertEvent) -> bool:
        if self.digest_minutes:
            return self.start <= alert.fired_at < self.end
        return alert.window_start == self.start


def topic_publisher(send: Callable[[str, bytes, bytes], Awaitable[object]], topics: Topics) -> Publish:
    """A ``Publish`` that sends events as JSON to the alerts/retrain topics, keyed ``project/model``.

    ``send(topic, value, key)`` is the transport: ``KafkaPublisher.send_raw`` in an API process, or
    ``lambda topic, value, key: worker.app.send(topic, key=key, value=value)`` in a faust worker.
    """

    async def publish(kind: TopicKind, event: Event) -> None:
        topic = topics.alerts if kind == "alerts" else topics.retrain
        await send(topic, event.model_dump_json().encode(), model_key(event.project, event.model).encode())

    return publish


def _target_id(event: Event) -> str:
    if isinstance(event, AlertResolved):
        return event.resolution_id
    return event.alert_id if isinstance(event, AlertEvent) else event.request_id


def _monitor_id(event: Event) -> str:
    if isinstance(event, AlertEvent | AlertResolved):
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
        self._inflight: set[tuple[str, int]] = set()  # (target id, channel index) being delivered here
        self._groups: dict[tuple[str, str, int, datetime, int | None], _Group] = {}  # waiting to be sent
        self._closed = False
        self._collected = False  # ``aclose`` has gathered the tasks it waits for

    # ------------------------------------------------------------------ lifecycle

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to the running (or given) loop: ``submit`` schedules there."""
        self._loop = loop or asyncio.get_running_loop()
        self._closed = self._collected = False

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
        self,
        alerts: Sequence[AlertEvent],
        retrains: Sequence[RetrainEvent],
        monitors: Iterable[Monitor],
        resolved: Sequence[AlertResolved] = (),
    ) -> concurrent.futures.Future[list[DeliveryOutcome]] | None:
        """Schedule ``dispatch`` on the bound loop from any thread; never blocks, never raises.

        Without a bound loop the events stay stored and undelivered until ``resume_pending`` runs.
        """
        if not alerts and not retrains and not resolved:
            return None
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed:
            log.error(
                "dispatch_unscheduled", reason="no running dispatcher", alerts=len(alerts), retrains=len(retrains)
            )
            return None
        coroutine = self._dispatch_tracked(alerts, retrains, list(monitors), resolved)
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, loop)
        except RuntimeError:  # the loop closed meanwhile
            coroutine.close()
            log.error("dispatch_unscheduled", reason="event loop closed", alerts=len(alerts), retrains=len(retrains))
            return None

    async def _dispatch_tracked(
        self,
        alerts: Sequence[AlertEvent],
        retrains: Sequence[RetrainEvent],
        monitors: list[Monitor],
        resolved: Sequence[AlertResolved] = (),
    ) -> list[DeliveryOutcome]:
        """``dispatch`` as a task ``aclose`` waits for, like ``spawn``'s; ``run_coroutine_threadsafe`` makes
        the task, so it registers itself in its first step."""
        if self._collected:  # started after ``aclose`` gathered its tasks: left to ``resume_pending``
            log.error("dispatch_unscheduled", reason="dispatcher closed", alerts=len(alerts), retrains=len(retrains))
            return []
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self.dispatch(alerts, retrains, monitors, resolved=resolved)
        finally:
            self._tasks.discard(task)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Let running deliveries finish for up to ``timeout`` seconds, cancel the rest, close HTTP.

        Events submitted afterwards stay stored and undelivered until ``resume_pending``.
        """
        self._closed = True
        # Let deliveries submitted from threads just before this start: one pass of the loop runs the
        # callbacks ``run_coroutine_threadsafe`` queued (they create the tasks), the next runs the tasks'
        # first steps (which register them in ``_tasks``).
        for _ in range(2):
            await asyncio.sleep(0)
        pending = [task for task in self._tasks if not task.done()]
        self._collected = True  # a task starting later would make an HTTP client nobody closes
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
        self._groups.clear()

    # ------------------------------------------------------------------ delivery

    async def dispatch(
        self,
        alerts: Sequence[AlertEvent],
        retrains: Sequence[RetrainEvent],
        monitors: Iterable[Monitor],
        *,
        resolved: Sequence[AlertResolved] = (),
        only: dict[str, list[int]] | None = None,
    ) -> list[DeliveryOutcome]:
        """Publish (when configured) and deliver each event to its monitor's channels.

        ``monitors`` are looked up by (project, monitor_id); a retraining request names its monitor in
        ``evidence["monitor_id"]``. ``only`` restricts an event id to some channel indexes (resuming).
        Returns one outcome per delivery; never raises (cancellation still propagates).
        """
        claimed: list[tuple[str, int]] = []
        try:
            by_key = {(monitor.project, monitor.monitor_id): monitor for monitor in monitors}
            events: list[Event] = [*alerts, *retrains, *resolved]
            deliveries: list[tuple[Event, str, int, AnyChannel]] = []
            grouped: list[tuple[AlertEvent, Monitor, int, AnyChannel]] = []
            for event in events:
                monitor = by_key.get((event.project, _monitor_id(event)))
                if monitor is None:
                    log.error("dispatch_no_monitor", project=event.project, monitor_id=_monitor_id(event))
                    continue
                target = _target_id(event)
                for index, channel in enumerate(monitor.channels):
                    if only is not None and index not in only.get(target, []):
                        continue
                    if isinstance(event, AlertEvent) and self._grouped(channel, resuming=only is not None):
                        grouped.append((event, monitor, index, channel))  # claimed when the group is sent
                    elif (target, index) not in self._inflight:
                        deliveries.append((event, monitor.monitor_id, index, channel))
                        claimed.append((target, index))
            # Claimed before the first await: a resume pass running meanwhile skips these channels.
            self._inflight.update(claimed)
            if deliveries:  # and across processes: only the claims this process wins are sent
                jobs = [(job[0].project, _target_id(job[0]), job[2]) for job in deliveries]
                won = await asyncio.to_thread(self._claim, jobs, resuming=only is not None)
                deliveries = [job for job in deliveries if (_target_id(job[0]), job[2]) in won]
                if only is not None:  # a resume announces only what it took over
                    events = [event for event in events if any(job[0] is event for job in deliveries)]
            events, deliveries = await self._name_datasets(events, deliveries)
            if self._publish is not None:
                await asyncio.gather(*(self._publish_one(event) for event in events))
            joined = [self._join(*job) for job in grouped]
            # A resume does not wait for a digest period to end (the group's own task sends it then).
            waits = [done for done, wait in joined if only is None or wait == 0]
            results = await asyncio.gather(*(self._deliver(*job) for job in deliveries), *waits, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dispatch_failed", alerts=len(alerts), retrains=len(retrains))
            return []
        finally:
            self._inflight.difference_update(claimed)
        outcomes: list[DeliveryOutcome] = []
        for result in results:
            if isinstance(result, DeliveryOutcome):
                if not any(result is seen for seen in outcomes):  # a group's outcome, awaited by each member
                    outcomes.append(result)
            elif result is None:
                continue  # a group another process sent
            elif isinstance(result, asyncio.CancelledError):
                raise result
            elif isinstance(result, BaseException):
                log.error("delivery_crashed", error=repr(result)[:500])
        return outcomes

    async def _name_datasets(
        self, events: list[Event], deliveries: list[tuple[Event, str, int, AnyChannel]]
    ) -> tuple[list[Event], list[tuple[Event, str, int, AnyChannel]]]:
        """Retraining requests this process sends, each naming its dataset version: one stored without
        (its process died before the snapshot) gets the version made for it, or one made now."""
        unnamed = [e for e in events if isinstance(e, RetrainEvent) and "version" not in e.dataset]
        if not unnamed:
            return events, deliveries
        named = await asyncio.gather(
            *(asyncio.to_thread(with_dataset, self._alerts, self._settings, e) for e in unnamed)
        )
        swap: dict[int, Event] = {id(old): new for old, new in zip(unnamed, named, strict=True)}
        return (
            [swap.get(id(e), e) for e in events],
            [(swap.get(id(job[0]), job[0]), job[1], job[2], job[3]) for job in deliveries],
        )

    def _claim(self, jobs: Sequence[tuple[str, str, int]], *, resuming: bool) -> set[tuple[str, int]]:
        """Claim (project, target id, channel index) deliveries; returns the (target, index) pairs won.

        A fresh dispatch claims generation 0. A resume claims the next generation of a delivery whose
        holder is gone or stale (or generation 0 if nobody ever claimed it), and leaves the rest alone.
        """
        claims = self._alerts.claims
        by_project: dict[str, list[tuple[str, int]]] = {}
        for project, target, index in jobs:
            by_project.setdefault(project, []).append((target, index))
        won: set[tuple[str, int]] = set()
        now = datetime.now(UTC)
        for project, pairs in by_project.items():
            prefixes = {f"{target}/{index}": (target, index) for target, index in pairs}
            keys: dict[str, tuple[str, int]] = {}
            if not resuming:
                keys = prefixes
            else:
                holders = claims.holders(project, "delivery", list(prefixes))
                for prefix, pair in prefixes.items():
                    holder = holders.get(prefix)
                    if holder is None:
                        keys[prefix] = pair
                    elif (
                        claims.alive(holder.owner) is False
                        or now - holder.claimed_at > STALE_AFTER
                        or holder.owner == claims.owner  # this process's own, finished without a final attempt
                    ):
                        keys[generation(prefix, holder.generations)] = pair
                    else:
                        log.info("resume_skipped_claimed", project=project, target_id=pair[0], channel=pair[1])
            won |= {keys[key] for key in claims.claim(project, "delivery", list(keys))}
        return won

    async def _publish_one(self, event: Event) -> None:
        assert self._publish is not None
        kind: TopicKind = "retrain" if isinstance(event, RetrainEvent) else "alerts"
        try:
            await self._publish(kind, event)
        except Exception:  # delivery to channels must not depend on the bus
            log.exception("publish_failed", topic_kind=kind, project=event.project)

    async def _deliver(
        self, event: Event | AlertGroup, monitor_id: str, index: int, channel: AnyChannel
    ) -> DeliveryOutcome:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
        async with self._semaphore:
            deliverer = Deliverer.from_settings(
                self._settings, client=self._http(), on_attempt=partial(self._record, event, monitor_id, index)
            )
            return await deliverer.deliver(event, channel)

    async def _record(self, event: Event | AlertGroup, monitor_id: str, index: int, attempt: DeliveryAttempt) -> None:
        """Store an attempt; a group's attempt is stored for each of its alerts (their delivery log)."""
        attempts = [attempt]
        if isinstance(event, AlertGroup):
            attempts = [replace(attempt, target_id=alert.alert_id, event_type="alert") for alert in event.alerts]
        await asyncio.to_thread(delivery_rows.insert, self._alerts.storage, event.project, monitor_id, index, attempts)

    # ------------------------------------------------------------------ grouped notifications

    def _grouped(self, channel: AnyChannel, *, resuming: bool) -> bool:
        """Whether alerts to ``channel`` wait for their group: a digest always; otherwise when grouping is
        on and the alert is fresh (a resumed alert's window group was sent long ago: it goes alone)."""
        if isinstance(channel, PagerDutyChannel):
            return False
        if isinstance(channel, EmailChannel) and channel.digest_minutes:
            return True
        return self._settings.group_wait_seconds > 0 and not resuming

    def _join(
        self, alert: AlertEvent, monitor: Monitor, index: int, channel: AnyChannel
    ) -> tuple[asyncio.Future[DeliveryOutcome | None], float]:
        """Add ``alert`` to its group (starting the group's timer if it is the first): the group's outcome
        to await, and how long it waits."""
        loop = asyncio.get_running_loop()
        now = datetime.now(UTC)
        if isinstance(channel, EmailChannel) and channel.digest_minutes:
            period = timedelta(minutes=channel.digest_minutes)
            start = _EPOCH + ((alert.fired_at - _EPOCH) // period) * period
            end, since, digest = start + period, start, channel.digest_minutes
            wait = max(0.0, (end - now).total_seconds())
        else:
            start, end, digest = alert.window_start, alert.window_end, None
            since = alert.fired_at - GROUP_LOOKBACK
            wait = self._settings.group_wait_seconds
        key = (alert.project, monitor.monitor_id, index, start, digest)
        group = self._groups.get(key)
        if group is None:
            group = _Group(alert.project, monitor, index, channel, start, end, digest, since, loop.create_future())
            self._groups[key] = group
            self.spawn(self._flush(group, wait))
            log.info("group_waiting", project=alert.project, monitor_id=monitor.monitor_id, channel=index, seconds=wait)
        group.since = min(group.since, since)
        group.local.add(alert.alert_id)
        return asyncio.shield(group.done), wait  # awaited by each member; one cancelled waiter must not cancel it

    async def _flush(self, group: _Group, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
            if self._groups.get(group.key) is group:
                del self._groups[group.key]  # alerts arriving from now on start a new group
            outcome = await self._send_group(group)
        except asyncio.CancelledError:
            group.done.cancel()
            raise
        except Exception:  # nothing here may stop the dispatcher; the members stay owed (resume_pending)
            log.exception("group_failed", project=group.project, monitor_id=group.monitor.monitor_id)
            outcome = None
        if not group.done.done():
            group.done.set_result(outcome)

    async def _send_group(self, group: _Group) -> DeliveryOutcome | None:
        """Send the group's members still owed the channel as one message; None if none was left to send."""
        project, monitor_id, index = group.project, group.monitor.monitor_id, group.index
        rows = await asyncio.to_thread(self._alerts.pending, since=group.since, until=datetime.now(UTC))
        members = {
            row.event.alert_id: row.event
            for row in rows
            if isinstance(row.event, AlertEvent)
            and row.event.project == project
            and row.monitor_id == monitor_id
            and index in row.missing
            and group.member(row.event)
            and (row.event.alert_id, index) not in self._inflight
        }
        if not members:
            return None
        won_group = await asyncio.to_thread(self._alerts.claims.claim, project, "delivery", [group.claim_key])
        if group.claim_key not in won_group:
            # Another process sends the group. Give it time to claim what it read, then try only our own
            # alerts: those it did not see (stored after its read) go out here, as a second message.
            await asyncio.sleep(max(self._settings.group_wait_seconds, 1.0))
            members = {alert_id: alert for alert_id, alert in members.items() if alert_id in group.local}
        jobs = [(project, alert_id, index) for alert_id in members]
        won = await asyncio.to_thread(self._claim, jobs, resuming=True)
        alerts = sorted(
            (alert for alert_id, alert in members.items() if (alert_id, index) in won),
            key=lambda alert: (alert.model, alert.dimension, alert.alert_id),
        )
        if not alerts:
            return None
        taken = [(alert.alert_id, index) for alert in alerts]
        self._inflight.update(taken)
        try:
            log.info("group_sending", project=project, monitor_id=monitor_id, channel=index, alerts=len(alerts))
            if len(alerts) == 1:
                return await self._deliver(alerts[0], monitor_id, index, group.channel)
            ids = "\x1f".join(alert.alert_id for alert in alerts)
            digest = hashlib.sha256(f"{project}\x1f{monitor_id}\x1f{index}\x1f{ids}".encode()).hexdigest()[:32]
            event = AlertGroup(
                group_id=f"grp-{digest}",
                project=project,
                monitor_id=monitor_id,
                monitor_name=alerts[0].monitor_name or group.monitor.name,
                window_start=None if group.digest_minutes else group.start,
                window_end=None if group.digest_minutes else group.end,
                digest_minutes=group.digest_minutes,
                alerts=alerts,
            )
            return await self._deliver(event, monitor_id, index, group.channel)
        finally:
            self._inflight.difference_update(taken)

    # ------------------------------------------------------------------ recovery

    async def resume_pending(
        self,
        lookup: MonitorLookup,
        *,
        older_than: timedelta = STALE_AFTER,
        within: timedelta = timedelta(days=1),
        fired_before: datetime | None = None,
    ) -> int:
        """Deliver again what fired in the last ``within`` and still owes a channel a delivery, to just
        those channels; returns how many events it resent.

        ``fired_before`` (default: ``older_than`` ago) bounds what counts as abandoned. At start-up it is
        the start time: no earlier event can be in flight in this process, so all of them go out at
        once. A periodic sweep keeps the age margin, because another process sharing the store may
        still be delivering a younger event. Acknowledged alerts
        and channels that got a 2xx are never resent (``AlertStore.pending``), nor a channel this
        dispatcher is delivering right now, nor one another live process holds the claim of (``_claim``).
        """
        now = datetime.now(UTC)
        until = fired_before if fired_before is not None else now - older_than
        try:
            rows = await asyncio.to_thread(self._alerts.pending, since=now - within, until=until)
            rows = [
                Pending(row.event, row.monitor_id, missing)
                for row in rows
                if (missing := [i for i in row.missing if (_target_id(row.event), i) not in self._inflight])
            ]
            if not rows:
                return 0
            monitors = await asyncio.to_thread(self._monitors_of, lookup, rows)
        except Exception:
            log.exception("resume_pending_failed")
            return 0
        rows = [row for row in rows if (row.event.project, row.monitor_id) in monitors]
        if not rows:
            return 0
        alerts = [row.event for row in rows if isinstance(row.event, AlertEvent)]
        retrains = [row.event for row in rows if isinstance(row.event, RetrainEvent)]
        resolved = [row.event for row in rows if isinstance(row.event, AlertResolved)]
        log.warning("delivery_resumed", alerts=len(alerts), retrains=len(retrains), resolved=len(resolved))
        only = {_target_id(row.event): row.missing for row in rows}
        await self.dispatch(alerts, retrains, monitors.values(), resolved=resolved, only=only)
        return len(rows)

    @staticmethod
    def _monitors_of(lookup: MonitorLookup, rows: Sequence[Pending]) -> dict[tuple[str, str], Monitor]:
        """The monitor of each pending event (one lookup per monitor); events of deleted ones are logged."""
        monitors: dict[tuple[str, str], Monitor] = {}
        missing: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.event.project, row.monitor_id)
            if key in monitors or key in missing:
                continue
            monitor = lookup(*key)
            if monitor is None:
                missing.add(key)
                log.error("resume_no_monitor", project=key[0], monitor_id=key[1], target_id=_target_id(row.event))
            else:
                monitors[key] = monitor
        return monitors
