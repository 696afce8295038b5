"""The overview: every model of the project with its health and its latest window's numbers, each
with a sparkline of the last windows and its change against the model's reference windows."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field

from fastapi import APIRouter, Response

from api.queries.dashboard import ModelWindows, model_windows
from api.ui.charts import Sparkline, sparkline
from api.ui.web import UiDep, UiRoute
from schemas.monitors import Monitor
from streams.monitors.defaults import monitors_for

router = APIRouter(prefix="/ui", route_class=UiRoute)
SPARK_WINDOWS = 24
# (metric, label, format filter, higher is better?) for the overview columns
COLUMNS: tuple[tuple[str, str, str, bool | None], ...] = (
    ("count", "calls", "num", None),
    ("latency_p95_ms", "p95 latency", "ms", False),
    ("cost_usd", "cost", "usd", False),
    ("thumbs_up_rate", "thumbs-up", "pct", True),
)


@dataclass(slots=True)
class Tile:
    """One number of one model: its latest value, a sparkline, and the change vs the reference."""

    value: float | None
    spark: Sparkline | None
    change: float | None  # relative change vs the reference mean
    worse: bool  # the change goes the bad way by more than 10 %


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
    return Tile(value, sparkline([p.value for p in points], width=96, height=24), change, worse)


def overview_rows(
    models: list[ModelWindows], open_alerts: dict[tuple[str, str], int], monitors: list[Monitor]
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
        row.tiles = {metric: _tile(windows, metric, better) for metric, _, _, better in COLUMNS}
        row.drift_share = _tile(windows, "dataset_drift", False)
        points = windows.series.get("count", [])
        row.last_window = points[-1].window_start.isoformat() if points else ""
        row.monitors = monitors_for(monitors, windows.model)
        rows.append(row)
    order = {"critical": 0, "warning": 1, "ok": 2, "idle": 3}
    return sorted(rows, key=lambda r: (order[r.health], r.model))


@router.get("")
async def overview(ui: UiDep) -> Response:
    monitoring = ui.services.monitoring
    models, open_alerts, monitors = await asyncio.gather(
        asyncio.to_thread(model_windows, ui.services.storage, ui.project, SPARK_WINDOWS),
        asyncio.to_thread(monitoring.alerts.open_counts, ui.project),
        asyncio.to_thread(monitoring.store.list, ui.project),
    )
    rows = overview_rows(models, open_alerts, monitors)
    return ui.render(
        "overview.html",
        rows=rows,
        columns=COLUMNS,
        open_alerts=sum(open_alerts.values()),
        health=Counter(row.health for row in rows),
    )
