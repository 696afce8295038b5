"""The ``monitor_evaluations`` table: every verdict of a monitor on a model's window (breached or calm),
with the alert or retraining request it led to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

_COLUMNS = [
    "project",
    "monitor_id",
    "model",
    "window_start",
    "window_end",
    "breached",
    "value",
    "alert_id",
    "retrain_id",
    "version",
]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One stored verdict of a monitor on a model's window; ids are '' when none."""

    window_start: datetime
    window_end: datetime
    breached: bool
    value: float
    alert_id: str
    retrain_id: str


def _evaluation(row: Mapping[str, Any]) -> Evaluation:
    return Evaluation(
        window_start=as_utc(row["window_start"]),
        window_end=as_utc(row["window_end"]),
        breached=bool(row["breached"]),
        value=row["value"],
        alert_id=row["alert_id"],
        retrain_id=row["retrain_id"],
    )


def insert(storage: Storage, verdicts: Sequence[Sequence[Any]]) -> None:
    """Store verdicts, each ``[project, monitor_id, model, window_start, window_end, breached, value,
    alert_id, retrain_id, version]`` (one insert for a whole window)."""
    storage.insert_rows("monitor_evaluations", _COLUMNS, verdicts)


def newest(
    storage: Storage, project: str, monitor_id: str, model: str, *, up_to: datetime, limit: int
) -> list[Evaluation]:
    """The newest verdicts of (monitor, model) with window_start <= ``up_to``, newest first."""
    rows = storage.rows(
        "SELECT window_start, window_end, breached, value, alert_id, retrain_id "
        f"FROM {storage.database}.monitor_evaluations FINAL WHERE project = {{project:String}} "
        "AND monitor_id = {monitor_id:String} AND model = {model:String} "
        "AND window_start <= {up_to:DateTime64(3, 'UTC')} ORDER BY window_start DESC LIMIT {limit:UInt32}",
        {"project": project, "monitor_id": monitor_id, "model": model, "up_to": ch_time(up_to), "limit": limit},
    )
    return [_evaluation(row) for row in rows]


def episode(
    storage: Storage, project: str, monitor_id: str, model: str, *, at: datetime
) -> tuple[datetime | None, bool]:
    """The breach episode around the window starting ``at``: (start of the calm window it follows,
    None if none; whether a window of it other than ``at`` already fired a retraining request).

    An episode ends at a calm verdict (the window was evaluated and did not breach). Both sides of
    ``at`` count: a worker that took over a partition may evaluate windows out of order (a later
    one by the watermark, earlier ones left unclosed by the dead worker by recovery), and the
    episode has one request whichever came first. Read from storage, so every process agrees.
    """
    key = "project = {project:String} AND monitor_id = {monitor_id:String} AND model = {model:String}"
    table = f"{storage.database}.monitor_evaluations FINAL"
    rows = storage.query(
        f"WITH (SELECT maxOrNull(window_start) FROM {table} WHERE {key} AND breached = 0 "
        "AND window_start < {at:DateTime64(3, 'UTC')}) AS calm_before, "
        f"(SELECT minOrNull(window_start) FROM {table} WHERE {key} AND breached = 0 "
        "AND window_start > {at:DateTime64(3, 'UTC')}) AS calm_after "
        f"SELECT calm_before, countIf(retrain_id != '' AND window_start != {{at:DateTime64(3, 'UTC')}} "
        "AND (calm_before IS NULL OR window_start > calm_before) "
        f"AND (calm_after IS NULL OR window_start < calm_after)) FROM {table} WHERE {key}",
        {"project": project, "monitor_id": monitor_id, "model": model, "at": ch_time(at)},
    ).result_rows
    calm_before, requested = rows[0] if rows else (None, 0)
    return (as_utc(calm_before) if calm_before is not None else None), bool(requested)
