"""No-data monitors: a model (or one value of a tag, with ``group_by``) that was sending events and
went quiet fires an alert, although no window of it closes.

The monitor service calls ``NoDataWatch.check`` on a timer (``LOOPWATCH_NO_DATA_CHECK_SECONDS``) in
every process that evaluates windows (embedded runner, Kafka workers). Per enabled no-data monitor:

1. *was sending*: the models of its scope with events in the lookback
   (``LOOPWATCH_NO_DATA_LOOKBACK_SECONDS``, at least twice ``for``), read from the ``model_activity``
   aggregate (``streams.storage.activity``), never from the raw table;
2. *silence*: the newest event is older than ``for`` → an alert whose window runs from that event to
   ``for`` after it. Its id is derived from (monitor, model, entity, newest event), so every process
   and every later sweep of the same silence computes the same alert: stored once, announced by the
   winner of the ``alert`` claim — one alert per silence episode;
   with ``below_share``: events in the last ``for`` below that share of the model's usual rate for
   this hour of the week (mean of the same hour over the previous four weeks; no history, no verdict),
   one alert per monitor, model and hour while it lasts;
3. *resolution*: a firing no-data alert is resolved as soon as the source has an event newer than the
   silence (or its rate is back above the share): stored with an id derived from the alert and
   announced by the winner of the ``resolve`` claim, like window-based resolutions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import structlog

from schemas.events import AlertEvent, AlertResolved
from schemas.monitors import ANY, Monitor, NoDataCondition
from schemas.settings import Settings
from streams import metrics
from streams.delivery.wording import silence_words
from streams.monitors.alerts import AlertStore
from streams.monitors.evaluation import EvaluationResult, dedup_key, stable_id
from streams.monitors.store import MonitorStore
from streams.storage import StorageError, as_utc
from streams.storage import alerts as alert_rows
from streams.storage.activity import (
    Silence,
    entity_last_seen,
    events_between,
    last_seen,
    silent_entities,
    usual_hourly_rate,
)

log = structlog.get_logger(__name__)


def _key(monitor_id: str, model: str, at: datetime, entity: str) -> str:
    return dedup_key(monitor_id, model, at) + ":no_data" + (f":{entity}" if entity else "")


class NoDataWatch:
    """Fires and resolves the alerts of no-data monitors; thread-safe (stateless between checks)."""

    def __init__(self, store: MonitorStore, alerts: AlertStore, settings: Settings) -> None:
        self.store = store
        self.alerts = alerts
        self.settings = settings

    def check(self, now: datetime | None = None) -> EvaluationResult:
        """One sweep over every project's no-data monitors. A project whose storage read fails is
        logged and skipped (the next sweep tries again)."""
        now = as_utc(now or datetime.now(UTC))
        result = EvaluationResult()
        for project in self.store.projects():
            for monitor in self.store.active(project):
                if not isinstance(monitor.condition, NoDataCondition):
                    continue
                try:
                    self._monitor(monitor, monitor.condition, now, result)
                except StorageError as exc:
                    log.warning("no_data_check_failed", project=project, monitor_id=monitor.monitor_id, error=str(exc))
        return result

    # ------------------------------------------------------------------ one monitor

    def _monitor(self, monitor: Monitor, condition: NoDataCondition, now: datetime, result: EvaluationResult) -> None:
        storage = self.alerts.storage
        quiet = timedelta(seconds=condition.seconds)
        lookback = now - max(timedelta(seconds=self.settings.no_data_lookback_seconds), 2 * quiet)
        seen = last_seen(storage, monitor.project, None if monitor.scope == ANY else [monitor.scope], since=lookback)
        firing = alert_rows.firing(self.alerts.storage, monitor.project, monitor_id=monitor.monitor_id)
        breaches: list[AlertEvent] = []
        low: set[str] = set()  # models below their usual rate now
        if condition.below_share is not None:
            for model in seen:
                alert = self._slow(monitor, condition, model, now)
                if alert is not None:
                    low.add(model)
                    breaches.append(alert)
        elif monitor.group_by is not None:
            for model in seen:
                for silence in silent_entities(
                    storage,
                    monitor.project,
                    model,
                    monitor.group_by,
                    since=lookback,
                    quiet_since=now - quiet,
                    limit=self.settings.entity_top_k,
                ):
                    breaches.append(self._silent(monitor, condition, silence))
        else:
            for model, last in seen.items():
                if last < now - quiet:
                    breaches.append(self._silent(monitor, condition, Silence(model, last)))
        self._resolve(monitor, condition, firing, seen, low, lookback, now, result)
        open_ = {(alert.model, tuple(alert.entities)) for alert in firing}
        fresh = [a for a in breaches if (a.model, tuple(a.entities)) not in open_]  # one per episode
        self._fire(monitor, fresh, result)

    def _silent(self, monitor: Monitor, condition: NoDataCondition, silence: Silence) -> AlertEvent:
        last = silence.last_at
        return self._event(
            monitor,
            silence.model,
            silence.entity,
            start=last,
            end=last + timedelta(seconds=condition.seconds),
            value=0.0,
            threshold=0.0,
            details={"last_event_at": last.isoformat(), "for": condition.for_},
            summary=silence_words(
                silence.model,
                silence.entity,
                last_at=last.strftime("%Y-%m-%d %H:%M:%S UTC"),
                duration=condition.for_,
            ),
        )

    def _slow(self, monitor: Monitor, condition: NoDataCondition, model: str, now: datetime) -> AlertEvent | None:
        storage = self.alerts.storage
        usual = usual_hourly_rate(storage, monitor.project, model, at=now)
        if usual is None or usual <= 0:
            return None
        expected = usual * condition.seconds / 3600
        events = events_between(storage, monitor.project, model, now - timedelta(seconds=condition.seconds), now)
        share = condition.below_share or 0.0
        if events >= share * expected:
            return None
        hour = now.replace(minute=0, second=0, microsecond=0)
        return self._event(
            monitor,
            model,
            "",
            start=hour,
            end=now.replace(microsecond=0),
            value=float(events),
            threshold=share * expected,
            details={"usual_per_hour": usual, "expected": expected, "events": events, "for": condition.for_},
            summary=silence_words(model, "", last_at="", duration=condition.for_, share=share, rate=events / expected),
        )

    def _event(
        self,
        monitor: Monitor,
        model: str,
        entity: str,
        *,
        start: datetime,
        end: datetime,
        value: float,
        threshold: float,
        details: dict[str, object],
        summary: str,
    ) -> AlertEvent:
        key = _key(monitor.monitor_id, model, start, entity)
        alert_id = stable_id("alert", monitor.project, key)
        base = self.settings.public_url.rstrip("/")
        since = {"model": model, "metric": "count", "since": start.isoformat()}
        return AlertEvent(
            alert_id=alert_id,
            project=monitor.project,
            monitor_id=monitor.monitor_id,
            monitor_name=monitor.name,
            model=model,
            kind="no_data",
            severity=monitor.severity,
            window_start=start,
            window_end=end,
            metric="count",
            dimension=entity,
            value=value,
            threshold=threshold,
            condition=monitor.condition.describe(),
            details={**details, "lookback_seconds": self.settings.no_data_lookback_seconds},
            summary=summary,
            alert_url=f"{base}/ui/alerts/{quote(alert_id, safe='')}?" + urlencode({"project": monitor.project}),
            window_url=f"{base}/ui/models/{quote(model, safe='')}",
            api_url=f"{base}/v1/alerts/{quote(alert_id, safe='')}",
            stats_api_url=f"{base}/v1/stats/latency?" + urlencode(since),
            dedup_key=key,
            entities=[entity] if entity else [],
        )

    def _fire(self, monitor: Monitor, alerts: list[AlertEvent], result: EvaluationResult) -> None:
        if not alerts:
            return
        project = monitor.project
        fired = alert_rows.by_dedup_key(self.alerts.storage, project, [a.dedup_key for a in alerts])
        alerts = [a for a in alerts if a.dedup_key not in fired]
        if not alerts:
            return
        now = datetime.now(UTC)
        snoozes: dict[str, datetime | None] = {}
        for model in dict.fromkeys(a.model for a in alerts):
            until = self.alerts.snoozes.snoozed_until(project, [monitor.monitor_id], model, at=now)
            snoozes[model] = until.get(monitor.monitor_id)
        alerts = [a.model_copy(update={"snoozed_until": snoozes[a.model]}) for a in alerts]
        channels = {a.alert_id: 0 if a.snoozed_until is not None else len(monitor.channels) for a in alerts}
        alert_rows.insert(self.alerts.storage, alerts, channels)
        won = self.alerts.claims.claim(project, "alert", [a.alert_id for a in alerts])
        announced = [a for a in alerts if a.alert_id in won and a.snoozed_until is None]
        for alert in alerts:
            if alert.alert_id in won:
                log.warning(
                    "alert_fired",
                    project=project,
                    model=alert.model,
                    monitor_id=monitor.monitor_id,
                    metric="count",
                    condition="no_data",
                    entity=alert.dimension,
                    window_start=alert.window_start.isoformat(),
                    alert_id=alert.alert_id,
                    snoozed=alert.snoozed_until is not None,
                )
        if announced:
            metrics.alerts_fired(announced)
            result.alerts += announced
            result.add_monitors([monitor])

    # ------------------------------------------------------------------ resolution

    def _resolve(
        self,
        monitor: Monitor,
        condition: NoDataCondition,
        firing: list[AlertEvent],
        seen: dict[str, datetime],
        low: set[str],
        lookback: datetime,
        now: datetime,
        result: EvaluationResult,
    ) -> None:
        """Resolve the firing alerts whose source sent again (or is back above its share)."""
        back: list[tuple[AlertEvent, datetime]] = []
        for alert in firing:
            if condition.below_share is not None:
                if alert.model not in low and alert.model in seen:
                    back.append((alert, now))
                continue
            if alert.entities and monitor.group_by is not None:
                tag = monitor.group_by
                value = alert.entities[0].partition("=")[2]
                newest = entity_last_seen(
                    self.alerts.storage, monitor.project, alert.model, tag, [value], since=alert.window_start
                ).get(alert.entities[0])
            else:
                newest = seen.get(alert.model)
            if newest is not None and newest > alert.window_start:
                back.append((alert, newest))
        if not back:
            return
        resolutions = [
            AlertResolved(
                resolution_id=stable_id("resolved", monitor.project, alert.alert_id),
                alert_id=alert.alert_id,
                project=monitor.project,
                monitor_id=monitor.monitor_id,
                monitor_name=alert.monitor_name,
                model=alert.model,
                severity=alert.severity,
                summary=alert.summary,
                fired_window_start=alert.window_start,
                calm_since=since,
                calm_windows=0,
                resolved_window_end=now,
                alert_url=alert.alert_url,
                api_url=alert.api_url,
            )
            for alert, since in back
        ]
        sent = {alert.alert_id: alert.snoozed_until is None and bool(monitor.channels) for alert, _ in back}
        channels = {r.resolution_id: len(monitor.channels) if sent[r.alert_id] else 0 for r in resolutions}
        self.alerts.resolutions.insert(resolutions, channels)
        won = self.alerts.claims.claim(monitor.project, "resolve", [r.alert_id for r in resolutions])
        for resolution in resolutions:
            if resolution.alert_id in won:
                log.info(
                    "alert_resolved",
                    project=monitor.project,
                    model=resolution.model,
                    monitor_id=monitor.monitor_id,
                    alert_id=resolution.alert_id,
                    condition="no_data",
                )
        delivered = [r for r in resolutions if r.alert_id in won and channels[r.resolution_id]]
        result.resolved += delivered
        if delivered:
            result.add_monitors([monitor])
        firing[:] = [alert for alert in firing if alert.alert_id not in {r.alert_id for r in resolutions}]
