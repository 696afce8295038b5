"""The overview: every model of the project with its health and its latest window's numbers, each
with a sparkline of the last windows and its change against the model's reference windows."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Response

from api.queries.dashboard import OVERVIEW_METRICS, ModelWindows, model_windows
from api.ui.charts import Sparkline, sparkline
from api.ui.web import UiDep, UiRoute, duration
from schemas.monitors import Monitor
from streams.monitors.defaults import monitors_for
from streams.storage import alerts as alert_rows
from streams.storage import dead_letters

router = APIRouter(prefix="/ui", route_class=UiRoute)
SPARK_WINDOWS = 24
REJECTION_DAYS, REJECTION_LIMIT = 7, 10  # the "recent ingest rejections" panel: the project's newest dead letters
# (metric, label, format filter, higher is better?) for the overview columns
COLUMNS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("count", "calls", "num", None),
    ("latency_p95_ms", "p95 latency", "ms", False),
    ("cost_usd", "cost", "usd", False),
    ("thumbs_up_rate", "thumbs-up", "pct", True),
)


FAMILY_OF = {metric: family for family, metric in OVERVIEW_METRICS}


@dataclass(frozen=True, slots=True)
class Unevaluated:
    """A monitor that skipped the latest window: fewer samples than its ``min_samples``."""

    monitor: str
    samples: int
    needed: int


@dataclass(slots=True)
class Tile:
    """One number of one model: its latest value, a sparkline, and the change vs the reference."""

    value: float | None
    spark: Sparkline | None
    change: float | None  # relative change vs the reference mean
    worse: bool  # the change goes the bad way by more than 10 %
    samples: int = 0  # behind the latest value (calls, ratings)
    unevaluated: list[Unevaluated] = field(default_factory=list)
    unpriced: int = 0  # cost only: calls of the latest window with tokens but no known price


@dataclass(slots=True)
class ModelRow:
    model: str
    health: str  # critical | warning | ok | idle
    alerts: Counter[str] = field(default_factory=Counter)
    tiles: dict[str, Tile] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)  # families drifted in the latest window
    drift_share: Tile | None = None
    last_window: str = ""
    monitors: list[Monitor] = field(default_factory=list)  # the monitors that judge its windows

    @property
    def unevaluated(self) -> list[tuple[str, Unevaluated]]:
        """(column label, skipped monitor) for every tile whose latest window a monitor did not evaluate."""
        labels = {metric: label for metric, label, _, _ in COLUMNS}
        found = [(labels[metric], u) for metric, tile in self.tiles.items() for u in tile.unevaluated]
        return found + [("drift", u) for u in (self.drift_share.unevaluated if self.drift_share else [])]


def _tile(windows: ModelWindows, metric: str, higher_is_better: bool | None) -> Tile:
    points = windows.series.get(metric, [])
    if not points:
        return Tile(None, None, None, False)
    value = points[-1].value
    reference = windows.reference.get(metric)
    change = None
    if reference is not None and math.isfinite(reference) and reference != 0:
        change = (value - reference) / abs(reference)
    worse = (
        change is not None and higher_is_better is not None and (change < -0.1 if higher_is_better else change > 0.1)
    )
    return Tile(value, sparkline([p.value for p in points], width=96, height=24), change, worse, points[-1].sample_size)


def _unevaluated(windows: ModelWindows, metric: str, monitors: list[Monitor]) -> list[Unevaluated]:
    """The monitors watching ``metric`` of this model that skipped its latest window for want of samples."""
    if metric == "family_drift":
        latest = list(windows.families.items())
    else:
        points = windows.series.get(metric, [])
        latest = [("", points[-1])] if points else []
    found = []
    for monitor in monitors:
        short = [
            point.sample_size
            for dimension, point in latest
            if monitor.matches(windows.model, FAMILY_OF[metric], metric, dimension)
            and point.sample_size < monitor.min_samples
        ]
        if short:
            found.append(Unevaluated(monitor.name, min(short), monitor.min_samples))
    return found


def _cost_tile(windows: ModelWindows) -> Tile:
    """Cost, with the latest window's calls that have tokens but no known price: a model nobody can
    price shows as unpriced, never as $0."""
    tile = _tile(windows, "cost_usd", False)
    unknown = windows.series.get("unknown_cost_events", [])
    tile.unpriced = int(unknown[-1].value) if unknown else 0
    costs = windows.series.get("cost_usd", [])
    if not any(point.value for point in costs):  # never priced: a flat $0 line and "+0 %" would mislead
        tile.spark, tile.change = None, None
    return tile


def overview_rows(
    models: list[ModelWindows], open_alerts: dict[tuple[str, str], int], monitors: list[Monitor] | None = None
) -> list[ModelRow]:
    by_model: dict[str, Counter[str]] = {}
    for (model, severity), count in open_alerts.items():
        by_model.setdefault(model, Counter())[severity] += count
    rows = []
    for windows in models:
        alerts = by_model.get(windows.model, Counter())
        drifted = sorted(family for family, point in windows.families.items() if point.flagged)
        dataset = windows.series.get("dataset_drift", [])
        if not windows.families and dataset and dataset[-1].flagged:
            drifted = ["dataset"]
        if alerts["critical"]:
            health = "critical"
        elif alerts["warning"] or drifted:
            health = "warning"
        elif not windows.series:
            health = "idle"
        else:
            health = "ok"
        row = ModelRow(windows.model, health, alerts, drifted=drifted)
        row.tiles = {
            metric: _cost_tile(windows) if metric == "cost_usd" else _tile(windows, metric, better)
            for metric, _, _, better in COLUMNS
        }
        row.drift_share = _tile(windows, "dataset_drift", False)
        row.monitors = monitors_for(monitors or [], windows.model)  # the monitors that judge its windows
        for metric, tile in row.tiles.items():
            tile.unevaluated = _unevaluated(windows, metric, row.monitors)
        row.drift_share.unevaluated = _unevaluated(windows, "family_drift", row.monitors)
        points = windows.series.get("count", [])
        row.last_window = points[-1].window_start.isoformat() if points else ""
        rows.append(row)
    order = {"critical": 0, "warning": 1, "ok": 2, "idle": 3}
    return sorted(rows, key=lambda r: (order[r.health], r.model))


@router.get("")
async def overview(ui: UiDep) -> Response:
    monitoring = ui.runtime.monitoring
    models, open_alerts, monitors, rejections = await asyncio.gather(
        asyncio.to_thread(model_windows, ui.runtime.storage, ui.project, SPARK_WINDOWS, datetime.now(UTC)),
        asyncio.to_thread(alert_rows.open_counts, monitoring.alerts.storage, ui.project),
        asyncio.to_thread(monitoring.store.active, ui.project),
        asyncio.to_thread(
            dead_letters.recent, ui.runtime.storage, ui.project, days=REJECTION_DAYS, limit=REJECTION_LIMIT
        ),
    )
    rows = overview_rows(models, open_alerts, monitors)
    return ui.render(
        "overview.html",
        rows=rows,
        columns=COLUMNS,
        open_alerts=sum(open_alerts.values()),
        window=duration(ui.runtime.settings.window_seconds),
        health=Counter(row.health for row in rows),
        rejections=rejections,
        rejection_days=REJECTION_DAYS,
        rejection_limit=REJECTION_LIMIT,
    )
