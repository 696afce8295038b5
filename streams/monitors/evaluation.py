"""Monitor evaluation: a closed window's statistics in, alerts and retraining requests out.

Called synchronously from the worker thread that has just written the rows (``StatsEngine.on_rows``),
once per window and again whenever a window is recomputed (late feedback). Per window and monitor:

0. the monitors of the window's model: the user monitors whose scope includes it and the built-ins
   none of them covers (``defaults.monitors_for``: a user monitor covers a built-in's family);
1. the rows the monitor watches (scope, family, metric, dimension), with at least ``min_samples``;
   no such rows → the monitor has nothing to say about this window;
2. breach = any of them meets the condition; the worst one becomes the alert's value;
3. dedup: ``dedup_key = monitor:model:window_start`` already stored → no new alert (re-evaluation).
   Processes that evaluate the same window at once (a partition moving between workers) compute the
   same alert: its id is derived from the project and dedup key, so both rows collapse into one in the
   keyed ``alerts`` table, and a claim (``streams.storage.Claims``) that only one process wins decides
   who announces and delivers it;
4. cooldown: another alert of the same monitor and model whose window starts within
   ``cooldown_seconds`` (window time, so replays and backfills behave like live traffic) → suppressed;
5. for monitors with ``retrain_after``: the verdict is stored; ``retrain_after`` consecutive breaching
   windows (windows with a verdict; one without data neither breaks nor extends a streak) fire one
   ``RetrainEvent``, and that is the only one of the breach episode: further breaching windows fire no
   other request until a window is evaluated and does not breach (the monitor recovered). The episode
   is read from the stored verdicts (on both sides of the window: a worker that took over a partition
   may close windows out of order), so it survives restarts. Its id is derived from (monitor, model,
   episode) and it is claimed like an alert, so processes racing in one episode fire it once.

6. snooze: a monitor snoozed (``monitor_snoozes``) for the model at evaluation time still stores its
   alert, with ``snoozed_until`` and no channel owed: it is never delivered, nor its resolution;
7. resolution: a firing alert of (monitor, model) is resolved when ``resolve_after`` evaluated windows
   in a row after it did not breach (breaching verdicts are always stored, calm ones of monitors with a
   firing alert or a retraining rule). The resolution's id is derived from the alert and a ``resolve``
   claim decides which process announces it, so it is stored and sent once.

Derived statistics: a monitor with ``group_by`` is judged on its tag's values (entities), computed in
ClickHouse for the window (``streams.storage.entity_stats``: the worst ``LOOPWATCH_ENTITY_TOP_K``
breaching ones come back); its alert names them, and each entity has its own cooldown (an entity named
by an unresolved alert within ``cooldown_seconds`` is not named again). A monitor with ``window`` is
judged on the statistic over that much time up to the window's end (``streams.storage.rolling_stats``).
No-data monitors are not judged here but by the sweep (``streams.monitors.no_data``).

Only model-wide rows (``model_version == ''``) are evaluated; per-version copies are for dashboards.
Alerts and requests are stored before ``evaluate`` returns, so delivery works from stored facts.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import structlog

from schemas.events import AlertEvent, AlertKind, AlertResolved, RetrainEvent
from schemas.monitors import (
    FlaggedCondition,
    Monitor,
    NoDataCondition,
    PValueCondition,
    ThresholdCondition,
    breaches,
)
from schemas.settings import Settings
from schemas.stats import StatRow
from streams import metrics
from streams.delivery.wording import breach_words, entity_words
from streams.monitors.alerts import AlertStore
from streams.monitors.defaults import monitors_for
from streams.monitors.store import MonitorStore
from streams.monitors.training import with_dataset
from streams.storage import alerts as alert_rows
from streams.storage import as_utc, monitor_evaluations, retrain_requests, window_stats
from streams.storage.entity_stats import breaching_entities
from streams.storage.monitor_evaluations import Evaluation
from streams.storage.rolling_stats import rolling_value

log = structlog.get_logger(__name__)

TOP_FEATURES = 50  # drift details carry at most this many columns, most drifted first
QUIET_SECONDS = 60.0  # how long "no unresolved alert for this model" is trusted without asking again
MAX_BREACHES = 20
ROLLING = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
_TICK = timedelta(milliseconds=1)  # cooldown bounds are strict, as for whole-model alerts


@dataclass
class EvaluationResult:
    """What one ``evaluate`` call fired (already stored), with the monitors whose channels get them."""

    alerts: list[AlertEvent] = field(default_factory=list)
    retrains: list[RetrainEvent] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)
    resolved: list[AlertResolved] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.retrains or self.resolved)

    def add_monitors(self, monitors: Sequence[Monitor]) -> None:
        known = {(m.project, m.monitor_id) for m in self.monitors}
        for monitor in monitors:
            if (monitor.project, monitor.monitor_id) not in known:
                known.add((monitor.project, monitor.monitor_id))
                self.monitors.append(monitor)


@dataclass
class _Verdict:
    monitor: Monitor
    breaching: list[StatRow]
    worst: StatRow


def _finite(value: float | None, default: float | None = 0.0) -> float | None:
    if value is None or not math.isfinite(value):
        return default
    return float(value)


def dedup_key(monitor_id: str, model: str, window_start: datetime) -> str:
    return f"{monitor_id}:{model}:{as_utc(window_start).isoformat()}"


_ID_NAMESPACE = uuid.UUID("5b0c6f1e-7a43-4c1e-9d1b-6c6f6f707761")


def stable_id(kind: str, project: str, key: str) -> str:
    """The id every process computes for the same (kind, project, key): duplicates collapse by id."""
    return uuid.uuid5(_ID_NAMESPACE, f"{kind}\x1f{project}\x1f{key}").hex


def alert_kind(family: str, metric: str) -> AlertKind:
    if family == "latency" and metric in ("error_rate", "error_count"):
        return "error_rate"
    return family  # type: ignore[return-value]


def drift_score(value: float, p_value: float | None, threshold: float | None, method: str = "") -> float:
    """How far a column drifted, comparable within a method and roughly across methods.

    p-value tests (the row has a p-value): log(p)/log(threshold), >1 once p is below the threshold and
    growing as p shrinks (ascending p = most drifted first). Distances: value/threshold.
    """
    if p_value is not None or method in ("ks", "chisquare", "z"):
        p = value if p_value is None else p_value
        if not math.isfinite(p):
            return 0.0
        if p <= 0:
            return math.inf
        limit = threshold if threshold is not None and 0 < threshold < 1 else 0.05
        return math.log(p) / math.log(limit) if p < 1 else 0.0
    if not math.isfinite(value):
        return 0.0
    return value / threshold if threshold else value


def counts_for(monitor: Monitor, row: StatRow) -> bool:
    """The monitor watches this row (scope, family, metric, dimension) and it has enough samples."""
    return monitor.matches(row.model, row.family, row.metric, row.dimension) and row.sample_size >= monitor.min_samples


def row_breaches(monitor: Monitor, row: StatRow) -> bool:
    """The row breaches the monitor's condition (whether the monitor counts the row is ``counts_for``)."""
    reference = row.details.get("reference") if isinstance(row.details, dict) else None
    return breaches(
        monitor.condition,
        value=row.value,
        p_value=row.p_value,
        flagged=row.flagged,
        reference=reference if isinstance(reference, int | float) else None,
        direction=monitor.direction(),
    )


def _worst(monitor: Monitor, rows: list[StatRow]) -> StatRow:
    condition = monitor.condition
    if isinstance(condition, ThresholdCondition):
        pick = max if condition.operator in ("gt", "gte") else min
        return pick(rows, key=lambda row: row.value)
    if isinstance(condition, PValueCondition):
        return min(rows, key=lambda row: row.p_value if row.p_value is not None else 1.0)
    if monitor.metric == "column_drift":
        return max(
            rows, key=lambda row: drift_score(row.value, row.p_value, row.threshold, row.details.get("method", ""))
        )
    return max(rows, key=lambda row: row.value)


def _describe(monitor: Monitor) -> tuple[str, float | None]:
    """The alert's condition text and its threshold (None: the row's own)."""
    condition = monitor.condition
    if isinstance(condition, ThresholdCondition):
        return condition.describe(), condition.value
    if isinstance(condition, PValueCondition):
        direction = monitor.direction()
        suffix = {"down": ", decrease", "up": ", increase", "any": ""}[direction]
        return condition.describe() + suffix, condition.alpha
    assert isinstance(condition, FlaggedCondition)
    return condition.describe(), None


def _feature(row: StatRow) -> dict[str, Any]:
    method = str(row.details.get("method", ""))
    return {
        "name": row.dimension,
        "method": method,
        "value": _finite(row.value, None),
        "threshold": _finite(row.threshold, None),
        "p_value": _finite(row.p_value, None),
        "drifted": bool(row.flagged),
        "score": _finite(drift_score(row.value, row.p_value, row.threshold, method), 1e9),
    }


def top_features(rows: Sequence[StatRow], limit: int = TOP_FEATURES) -> list[dict[str, Any]]:
    """Columns sorted most drifted first: drifted before not, then by ``drift_score`` descending."""
    features = [_feature(row) for row in rows]
    features.sort(key=lambda f: (not f["drifted"], -(f["score"] or 0.0), f["name"]))
    return features[:limit]


def window_url(base: str, model: str, start: datetime) -> str:
    """The dashboard page of a model's window (the alert's window links there)."""
    return f"{base}/ui/models/{quote(model, safe='')}/windows/{quote(as_utc(start).isoformat(), safe='')}"


def _add_family_effects(features: list[dict[str, Any]], families: Sequence[StatRow], verdict: bool) -> None:
    """Each column's effect size and family-adjusted p-value (the family rule's evidence) beside its
    Evidently statistic, where the family verdicts of the window carry them. With ``verdict`` (a
    ``family_drift`` monitor) a column is ``drifted`` by the family rule, as the alert's summary counts
    it, not by Evidently's per-column test, and the columns are ordered by effect."""
    evidence: dict[str, dict[str, Any]] = {}
    for row in families:
        for item in row.details.get("evidence") or []:
            if isinstance(item, dict) and "column" in item:
                evidence[str(item["column"])] = item
    for feature in features:
        item = evidence.get(str(feature["name"]))
        if item is not None:
            feature["effect"] = _finite(item.get("effect"), None)
            feature["family_p_value"] = _finite(item.get("p_value"), None)
            feature["reference_mean"] = _finite(item.get("reference_mean"), None)
            feature["current_mean"] = _finite(item.get("current_mean"), None)
            if verdict:
                feature["drifted"] = bool(item.get("drifted"))
    if verdict:
        features.sort(key=lambda f: (not f["drifted"], -(f.get("effect") or 0.0), f["name"]))


class MonitorEngine:
    """Evaluates statistics rows against the project's monitors; thread-safe (one evaluation at a time)."""

    def __init__(self, store: MonitorStore, alerts: AlertStore, settings: Settings) -> None:
        self.store = store
        self.alerts = alerts
        self.settings = settings
        self._lock = threading.Lock()
        self._verdicts: list[list[Any]] = []  # this window's verdicts, written in one insert
        # (project, model) → until when it is known to have no unresolved alert: spares calm windows
        # the query for alerts to resolve (an alert another process fires is seen after this at most)
        self._quiet: dict[tuple[str, str], float] = {}

    def evaluate(self, rows: Sequence[StatRow]) -> EvaluationResult:
        """Fire (and store) the alerts and retraining requests ``rows`` call for. Raises StorageError."""
        groups: dict[tuple[str, str, datetime, datetime], list[StatRow]] = defaultdict(list)
        for row in rows:
            if row.model_version == "":
                groups[(row.project, row.model, as_utc(row.window_start), as_utc(row.window_end))].append(row)
        result = EvaluationResult()
        with self._lock:
            for key in sorted(groups, key=lambda k: (k[2], k[0], k[1])):
                try:
                    self._window(key, groups[key], result)
                finally:
                    verdicts, self._verdicts = self._verdicts, []
                if verdicts:
                    monitor_evaluations.insert(self.alerts.storage, verdicts)
        return result

    # ------------------------------------------------------------------ one window

    def _window(self, key: tuple[str, str, datetime, datetime], rows: list[StatRow], result: EvaluationResult) -> None:
        project, model, start, end = key
        verdicts: list[_Verdict] = []
        unbreached: list[tuple[Monitor, StatRow]] = []
        for monitor in monitors_for(self.store.active(project), model):
            if isinstance(monitor.condition, NoDataCondition):
                continue  # judged by the sweep, not by closing windows
            if monitor.group_by is not None or monitor.window is not None:
                counted, breaching = self._derived(monitor, project, model, start, end)
                if not counted:
                    continue
                if breaching:
                    verdicts.append(_Verdict(monitor, breaching, breaching[0]))
                else:
                    unbreached.append((monitor, counted[0]))
                continue
            counted = [row for row in rows if counts_for(monitor, row)]
            if not counted:
                continue
            breaching = [row for row in counted if row_breaches(monitor, row)]
            if breaching:
                verdicts.append(_Verdict(monitor, breaching, _worst(monitor, breaching)))
            else:
                unbreached.append((monitor, counted[0]))
        firing = (
            self._resolve(project, model, (start, end), [m for m, _ in unbreached], result) if unbreached else set()
        )
        for monitor, row in unbreached:  # a calm verdict ends a retraining streak, counts towards resolving
            if monitor.retrain_after or monitor.monitor_id in firing:  # (other calm verdicts are not needed)
                self._record(monitor, model, (start, end), breached=False, value=row.value)
        if not verdicts:
            return
        snoozed = self.alerts.snoozes.snoozed_until(
            project, [v.monitor.monitor_id for v in verdicts], model, at=datetime.now(UTC)
        )

        fired = alert_rows.by_dedup_key(
            self.alerts.storage, project, [dedup_key(v.monitor.monitor_id, model, start) for v in verdicts]
        )
        longest = max(v.monitor.cooldown_seconds for v in verdicts)
        nearby = alert_rows.fired_between(
            self.alerts.storage,
            project,
            model,
            [v.monitor.monitor_id for v in verdicts if v.monitor.cooldown_seconds and v.monitor.group_by is None],
            start - timedelta(seconds=longest),
            start + timedelta(seconds=longest),
        )
        new_alerts: list[AlertEvent] = []
        alert_ids: dict[str, str] = {}  # monitor_id → the alert that stands for this window
        for verdict in verdicts:
            monitor = verdict.monitor
            key_ = dedup_key(monitor.monitor_id, model, start)
            if key_ in fired:
                alert_ids[monitor.monitor_id] = fired[key_]
                continue
            cooldown = timedelta(seconds=monitor.cooldown_seconds)
            if monitor.group_by is not None:
                # cooldown per entity: one named by an unresolved alert within the cooldown is left out
                cooling = (
                    alert_rows.entities_fired_between(
                        self.alerts.storage,
                        project,
                        model,
                        monitor.monitor_id,
                        start - cooldown + _TICK,
                        start + cooldown - _TICK,
                    )
                    if monitor.cooldown_seconds
                    else {}
                )
                kept = [row for row in verdict.breaching if row.dimension not in cooling]
                if not kept:
                    log.info(
                        "alert_suppressed",
                        reason="cooldown",
                        project=project,
                        model=model,
                        monitor_id=monitor.monitor_id,
                        window_start=start.isoformat(),
                        entities=len(verdict.breaching),
                    )
                    alert_ids[monitor.monitor_id] = next(iter(cooling.values()))
                    continue
                named = _Verdict(monitor, kept, kept[0])
                alert = self._alert(named, model, start, end, rows, snoozed.get(monitor.monitor_id))
                new_alerts.append(alert)
                alert_ids[monitor.monitor_id] = alert.alert_id
                continue
            holder = next(
                (
                    alert_id
                    for monitor_id, other, alert_id in nearby
                    if monitor_id == monitor.monitor_id and abs(other - start) < cooldown
                ),
                None,
            )
            if holder is not None:
                log.info(
                    "alert_suppressed",
                    reason="cooldown",
                    project=project,
                    model=model,
                    monitor_id=monitor.monitor_id,
                    window_start=start.isoformat(),
                    by_alert=holder,
                )
                alert_ids[monitor.monitor_id] = holder
                continue
            alert = self._alert(verdict, model, start, end, rows, snoozed.get(monitor.monitor_id))
            new_alerts.append(alert)
            alert_ids[monitor.monitor_id] = alert.alert_id
        for verdict in verdicts:  # monitors with retrain_after record theirs in ``_streak``
            if not verdict.monitor.retrain_after:
                alert_id = alert_ids.get(verdict.monitor.monitor_id, "")
                self._record(
                    verdict.monitor, model, (start, end), breached=True, value=verdict.worst.value, alert_id=alert_id
                )
        if new_alerts:
            # A snoozed monitor's alert is stored owing no channel: never delivered, not even later.
            channels = {
                a.alert_id: 0 if a.snoozed_until is not None else len(v.monitor.channels)
                for a in new_alerts
                for v in verdicts
                if v.monitor.monitor_id == a.monitor_id
            }
            # Stored first (same id everywhere, so a racing process's copy collapses into it; a crash
            # after this leaves the alert to the delivery sweep), then announced by the claim's winner.
            alert_rows.insert(self.alerts.storage, new_alerts, channels)
            self._quiet.pop((project, model), None)
            won = self.alerts.claims.claim(project, "alert", [a.alert_id for a in new_alerts])
            for alert in new_alerts:
                if alert.alert_id in won and alert.snoozed_until is not None:
                    log.info(
                        "alert_snoozed",
                        project=project,
                        model=model,
                        monitor_id=alert.monitor_id,
                        alert_id=alert.alert_id,
                        until=alert.snoozed_until.isoformat(),
                    )
            new_alerts = [alert for alert in new_alerts if alert.alert_id in won and alert.snoozed_until is None]
        if new_alerts:
            metrics.alerts_fired(new_alerts)
            result.alerts += new_alerts
            for alert in new_alerts:
                log.warning(
                    "alert_fired",
                    project=project,
                    model=model,
                    monitor_id=alert.monitor_id,
                    metric=alert.metric,
                    value=alert.value,
                    window_start=start.isoformat(),
                    alert_id=alert.alert_id,
                )
        new_retrains: list[RetrainEvent] = []
        for verdict in verdicts:
            if verdict.monitor.retrain_after:
                retrain = self._streak(verdict, model, (start, end), alert_ids.get(verdict.monitor.monitor_id, ""))
                if retrain is not None:
                    new_retrains.append(retrain)
        result.retrains += new_retrains
        firing = {a.monitor_id for a in new_alerts} | {r.evidence["monitor_id"] for r in new_retrains}
        result.add_monitors([v.monitor for v in verdicts if v.monitor.monitor_id in firing])

    # ------------------------------------------------------------------ derived statistics

    def _derived(
        self, monitor: Monitor, project: str, model: str, start: datetime, end: datetime
    ) -> tuple[list[StatRow], list[StatRow]]:
        """(counted, breaching) rows of a ``group_by`` or rolling ``window`` monitor for one window,
        computed from storage. A group_by monitor counts a calm row when no entity breaches."""
        since = end - ROLLING[monitor.window] if monitor.window else start
        details: dict[str, Any] = {"window": monitor.window, "range_start": since.isoformat()} if monitor.window else {}
        condition = monitor.condition
        assert isinstance(condition, ThresholdCondition)  # validated: derived monitors take thresholds
        if monitor.group_by is not None:
            entities = breaching_entities(
                self.alerts.storage,
                project,
                model,
                monitor.group_by,
                monitor.metric,
                start=since,
                end=end,
                operator=condition.operator,
                threshold=condition.value,
                min_samples=monitor.min_samples,
                limit=self.settings.entity_top_k,
                per_pass=self.settings.entity_pass_size,
                dimension=monitor.dimension,
            )
            breaching = [
                StatRow(
                    project,
                    model,
                    start,
                    end,
                    monitor.family,
                    monitor.metric,
                    entity.value,
                    dimension=entity.entity,
                    sample_size=entity.sample_size,
                    details={**details, "breaching_entities": entity.breaching},
                )
                for entity in entities
            ]
            calm = StatRow(project, model, start, end, monitor.family, monitor.metric, 0.0, details=details)
            return (breaching or [calm]), breaching
        rolled = rolling_value(
            self.alerts.storage,
            project,
            model,
            monitor.family,
            monitor.metric,
            start=since,
            end=end,
            dimension=monitor.dimension,
        )
        if rolled is None or rolled.sample_size < monitor.min_samples:
            return [], []
        details["windows"] = rolled.windows
        row = StatRow(
            project,
            model,
            start,
            end,
            monitor.family,
            monitor.metric,
            rolled.value,
            dimension=monitor.dimension if monitor.family == "privacy" else "",
            sample_size=rolled.sample_size,
            details=details,
        )
        return [row], ([row] if row_breaches(monitor, row) else [])

    # ------------------------------------------------------------------ resolution

    def _resolve(
        self,
        project: str,
        model: str,
        window: tuple[datetime, datetime],
        calm: list[Monitor],
        result: EvaluationResult,
    ) -> set[str]:
        """Resolve the firing alerts of monitors that ``calm`` this window completes ``resolve_after``
        evaluated calm windows for. Stored by every process that gets here (one id per alert), announced
        by the winner of the ``resolve`` claim, and only to channels that were sent the alert. Returns
        the monitors that had firing alerts of ``model`` (their calm verdict is worth storing)."""
        start, end = window
        key = (project, model)
        if self._quiet.get(key, 0.0) > time.monotonic():
            return set()  # no alert of this model was firing a moment ago, and none fired here since
        unresolved = alert_rows.firing(self.alerts.storage, project, model=model)
        if not unresolved:
            self._quiet[key] = time.monotonic() + QUIET_SECONDS
            return set()
        calm_ids = {monitor.monitor_id for monitor in calm}
        firing: dict[str, list[AlertEvent]] = defaultdict(list)
        for alert in unresolved:
            if alert.monitor_id in calm_ids and alert.window_start < start:
                firing[alert.monitor_id].append(alert)
        resolutions: list[AlertResolved] = []
        channels: dict[str, int] = {}
        monitors: dict[str, Monitor] = {}
        for monitor in calm:
            alerts = firing.get(monitor.monitor_id)
            if not alerts:
                continue
            needed = monitor.resolve_after
            history = [
                row
                for row in monitor_evaluations.newest(
                    self.alerts.storage, project, monitor.monitor_id, model, up_to=start, limit=needed + 1
                )
                if row.window_start != start
            ][: needed - 1]
            streak = [Evaluation(start, end, False, 0.0, "", ""), *history]
            if len(streak) < needed or any(row.breached for row in streak):
                continue
            calm_since = streak[-1].window_start
            for alert in alerts:
                if alert.window_start >= calm_since:
                    continue
                resolution = AlertResolved(
                    resolution_id=stable_id("resolved", project, alert.alert_id),
                    alert_id=alert.alert_id,
                    project=project,
                    monitor_id=monitor.monitor_id,
                    monitor_name=alert.monitor_name,
                    model=model,
                    severity=alert.severity,
                    summary=alert.summary,
                    fired_window_start=alert.window_start,
                    calm_since=calm_since,
                    calm_windows=needed,
                    resolved_window_end=end,
                    alert_url=alert.alert_url,
                    api_url=alert.api_url,
                )
                resolutions.append(resolution)
                sent = alert.snoozed_until is None and bool(monitor.channels)
                channels[resolution.resolution_id] = len(monitor.channels) if sent else 0
                monitors[resolution.resolution_id] = monitor
        if not resolutions:
            return set(firing)
        self.alerts.resolutions.insert(resolutions, channels)
        won = self.alerts.claims.claim(project, "resolve", [r.alert_id for r in resolutions])
        announced = [r for r in resolutions if r.alert_id in won]
        for resolution in announced:
            log.info(
                "alert_resolved",
                project=project,
                model=model,
                monitor_id=resolution.monitor_id,
                alert_id=resolution.alert_id,
                calm_windows=resolution.calm_windows,
            )
        delivered = [r for r in announced if channels[r.resolution_id]]
        result.resolved += delivered
        result.add_monitors([monitors[r.resolution_id] for r in delivered])
        return set(firing)

    def _record(
        self,
        monitor: Monitor,
        model: str,
        window: tuple[datetime, datetime],
        *,
        breached: bool,
        value: float,
        alert_id: str = "",
        retrain_id: str = "",
    ) -> None:
        self._verdicts.append(
            [
                monitor.project,
                monitor.monitor_id,
                model,
                window[0],
                window[1],
                int(breached),
                _finite(value) or 0.0,
                alert_id,
                retrain_id,
                time.time_ns(),
            ]
        )

    # ------------------------------------------------------------------ alerts

    def _alert(
        self,
        verdict: _Verdict,
        model: str,
        start: datetime,
        end: datetime,
        rows: list[StatRow],
        snoozed_until: datetime | None = None,
    ) -> AlertEvent:
        monitor, worst = verdict.monitor, verdict.worst
        condition, threshold = _describe(monitor)
        ordered = sorted(verdict.breaching, key=lambda r: r is not worst)
        details: dict[str, Any] = {
            "sample_size": worst.sample_size,
            "statistic": dict(worst.details),
            "resolve_after": monitor.resolve_after,
        }
        if len(verdict.breaching) > 1 or (monitor.dimension in ("", "*") and worst.dimension):
            details["breaching"] = [
                {
                    "dimension": row.dimension,
                    "value": _finite(row.value, None),
                    "p_value": _finite(row.p_value, None),
                    "threshold": _finite(row.threshold, None),
                    "sample_size": row.sample_size,
                }
                for row in sorted(verdict.breaching, key=lambda r: r is not worst)[:MAX_BREACHES]
            ]
        if monitor.family == "drift":
            columns = [row for row in rows if row.metric == "column_drift"]
            if not columns:
                columns = window_stats.column_drift(self.alerts.storage, monitor.project, model, start)
            features = top_features(columns, limit=len(columns))
            by_family_rule = monitor.metric == "family_drift"
            _add_family_effects(features, [row for row in rows if row.metric == "family_drift"], by_family_rule)
            details["features"] = features[:TOP_FEATURES]
            details["drifted_columns"] = sum(1 for feature in features if feature["drifted"])
            details["columns"] = len(columns)
        summary = breach_words(ordered, condition=condition, threshold=threshold)
        entities: list[str] = []
        if monitor.group_by is not None and threshold is not None:
            entities = [row.dimension for row in ordered]
            total = int(worst.details.get("breaching_entities") or len(ordered))
            details["entities"] = [
                {"entity": row.dimension, "value": _finite(row.value, None), "sample_size": row.sample_size}
                for row in ordered
            ]
            details["breaching_entities"] = total
            summary = entity_words(ordered, condition=condition, threshold=threshold, total=total)
            if monitor.family == "privacy":  # the rows are named by tag value: say which field and kind
                summary += f" (of {monitor.dimension})"
        if monitor.window is not None:
            details["window"] = monitor.window
            summary += f" over the last {monitor.window}"
        alert_id = stable_id("alert", monitor.project, dedup_key(monitor.monitor_id, model, start))
        base = self.settings.public_url.rstrip("/")
        return AlertEvent(
            alert_id=alert_id,
            project=monitor.project,
            monitor_id=monitor.monitor_id,
            monitor_name=monitor.name,
            model=model,
            kind=alert_kind(monitor.family, monitor.metric),
            severity=monitor.severity,
            window_start=start,
            window_end=end,
            metric=monitor.metric,
            dimension=worst.dimension,
            value=_finite(worst.value) or 0.0,
            threshold=_finite(threshold if threshold is not None else worst.threshold) or 0.0,
            condition=condition,
            p_value=_finite(worst.p_value, None),
            details=details,
            summary=summary,
            alert_url=f"{base}/ui/alerts/{quote(alert_id, safe='')}?" + urlencode({"project": monitor.project}),
            window_url=window_url(base, model, start),
            api_url=f"{base}/v1/alerts/{quote(alert_id, safe='')}",
            stats_api_url=self._stats_api_url(monitor, model, start, end),
            snoozed_until=snoozed_until,
            dedup_key=dedup_key(monitor.monitor_id, model, start),
            entities=entities,
        )

    def _stats_api_url(self, monitor: Monitor, model: str, start: datetime, end: datetime) -> str:
        base = self.settings.public_url.rstrip("/")
        if monitor.family == "drift":
            return f"{base}/v1/reports/drift?" + urlencode({"model": model, "window_start": start.isoformat()})
        query = {"model": model, "metric": monitor.metric, "since": start.isoformat(), "until": end.isoformat()}
        return f"{base}/v1/stats/{monitor.family}?" + urlencode(query)

    # ------------------------------------------------------------------ retraining

    def _streak(
        self, verdict: _Verdict, model: str, window: tuple[datetime, datetime], alert_id: str
    ) -> RetrainEvent | None:
        """Store this breaching verdict; fire a retraining request when it completes a streak in an
        episode that has not requested one yet."""
        monitor = verdict.monitor
        needed = int(monitor.retrain_after or 0)
        history = monitor_evaluations.newest(
            self.alerts.storage, monitor.project, monitor.monitor_id, model, up_to=window[0], limit=needed
        )
        same = history[0] if history and history[0].window_start == window[0] else None
        if same is not None:
            history = history[1:]
            if same.retrain_id:  # this window already completed a streak: keep that, fire nothing
                self._record(
                    monitor,
                    model,
                    window,
                    breached=True,
                    value=verdict.worst.value,
                    alert_id=alert_id or same.alert_id,
                    retrain_id=same.retrain_id,
                )
                return None
        calm_before, requested = monitor_evaluations.episode(
            self.alerts.storage, monitor.project, monitor.monitor_id, model, at=window[0]
        )
        if requested:
            # One request per episode: drift that persists is not news until the monitor recovers.
            self._record(monitor, model, window, breached=True, value=verdict.worst.value, alert_id=alert_id)
            return None
        streak = [Evaluation(window[0], window[1], True, verdict.worst.value, alert_id, "")]
        for row in history:
            if not row.breached or row.retrain_id or len(streak) >= needed:
                break
            streak.append(row)
        if len(streak) < needed:
            self._record(monitor, model, window, breached=True, value=verdict.worst.value, alert_id=alert_id)
            return None
        # The request's id names its episode (the calm window before it), so processes evaluating windows
        # of one episode at once compute the same id; the claim's winner announces it.
        episode = f"{monitor.monitor_id}:{model}:after:{calm_before.isoformat() if calm_before else '-'}"
        retrain = self._retrain(verdict, model, streak[::-1], stable_id("retrain", monitor.project, episode))
        retrain_requests.insert(
            self.alerts.storage,
            [retrain],
            {retrain.request_id: monitor.monitor_id},
            {retrain.request_id: len(monitor.channels)},
        )
        self._record(
            monitor,
            model,
            window,
            breached=True,
            value=verdict.worst.value,
            alert_id=alert_id,
            retrain_id=retrain.request_id,
        )
        if not self.alerts.claims.claim(monitor.project, "retrain", [retrain.request_id]):
            return None  # another process fired this episode's request
        retrain = with_dataset(self.alerts, self.settings, retrain)  # the snapshot it names (streams/monitors/training)
        log.warning(
            "retrain_requested",
            project=monitor.project,
            model=model,
            monitor_id=monitor.monitor_id,
            windows=len(streak),
            request_id=retrain.request_id,
        )
        return retrain

    def _retrain(self, verdict: _Verdict, model: str, streak: list[Evaluation], request_id: str) -> RetrainEvent:
        monitor, worst = verdict.monitor, verdict.worst
        first, last = streak[0], streak[-1]
        reason = list(dict.fromkeys(row.alert_id for row in streak if row.alert_id))
        evidence: dict[str, Any] = {
            "monitor_id": monitor.monitor_id,
            "monitor_name": monitor.name,
            "family": monitor.family,
            "metric": monitor.metric,
            "dimension": worst.dimension,
            "condition": _describe(monitor)[0],
            "consecutive_breaches": len(streak),
            "windows": [
                {
                    "window_start": row.window_start.isoformat(),
                    "window_end": row.window_end.isoformat(),
                    "value": _finite(row.value, None),
                    "alert_id": row.alert_id or None,
                }
                for row in streak
            ],
            "latest": {
                "value": _finite(worst.value, None),
                "p_value": _finite(worst.p_value, None),
                "threshold": _finite(worst.threshold, None),
                "statistic": dict(worst.details),
            },
        }
        since = retrain_requests.last_window_end(self.alerts.storage, monitor.project, model, before=last.window_end)
        params: dict[str, str] = {"model": model, "kind": "correction", "format": "chat"}
        if since is not None:
            params["since"] = since.isoformat()
        params["until"] = last.window_end.isoformat()
        dataset = {
            "endpoint": "/v1/feedback/export",
            "params": params,
            "url": f"{self.settings.public_url.rstrip('/')}/v1/feedback/export?{urlencode(params)}",
        }
        return RetrainEvent(
            request_id=request_id,
            project=monitor.project,
            model=model,
            reason=reason,
            window_start=first.window_start,
            window_end=last.window_end,
            evidence=evidence,
            dataset=dataset,
        )
