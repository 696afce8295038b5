"""The ``window_stats`` table: every read and write of the statistics the engine computes per window.

One row per ``schemas.stats.StatRow`` (the record; ``_stat_json`` and ``_stat_row`` map it to and from
a row). The table is a ``ReplacingMergeTree(computed_at)`` sorted by
``(project, model, family, window_start, metric, dimension, model_version)``: a window computed again
(late feedback, a retry, another worker) replaces its rows, so reads that must see one row per key use
``FINAL`` or keep the newest ``computed_at`` themselves. The statistics engine writes; the engine's
recovery, the spend baseline, the monitors, ``GET /v1/stats`` and the dashboard read through here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from schemas.stats import StatRow, WindowKey
from streams.storage import expiry
from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time, time_range

_STAT_COLUMNS = (
    "project, model, model_version, window_start, window_end, family, metric, dimension, value, p_value, "
    "threshold, flagged, sample_size, details"
)


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """A model's closed windows as of ``now``: the first start, the last end of those that started by
    ``now`` (None when every window lies ahead), and how many start after ``now`` (future timestamps)."""

    first_start: datetime
    last_end: datetime | None
    ahead: int


@dataclass(frozen=True, slots=True)
class ReferenceMean:
    """A model's mean of one model-wide metric over the windows of its reference range."""

    model: str
    metric: str
    mean: float


@dataclass(frozen=True, slots=True)
class ColumnDriftCount:
    """How often one column drifted over a range: windows flagged, windows tested, smallest p-value."""

    name: str
    flagged: int
    windows: int
    min_p: float | None


def _stat_json(row: StatRow) -> dict[str, Any]:
    return {
        "project": row.project,
        "model": row.model,
        "model_version": row.model_version,
        "window_start": ch_time(row.window_start),
        "window_end": ch_time(row.window_end),
        "family": row.family,
        "metric": row.metric,
        "dimension": row.dimension,
        "value": row.value,
        "p_value": row.p_value,
        "threshold": row.threshold,
        "flagged": int(row.flagged),
        "sample_size": row.sample_size,
        "details": orjson.dumps(row.details, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode(),
    }


def _details(text: str) -> dict[str, Any]:
    return orjson.loads(text) if text else {}


def _stat_row(row: Mapping[str, Any], *, details: bool = True) -> StatRow:
    """A row of ``_STAT_COLUMNS`` as its record (``details`` left empty when not asked for: parsing it
    is most of the cost of a long series)."""
    return StatRow(
        row["project"],
        row["model"],
        as_utc(row["window_start"]),
        as_utc(row["window_end"]),
        row["family"],
        row["metric"],
        row["value"],
        dimension=row["dimension"],
        model_version=row["model_version"],
        p_value=row["p_value"],
        threshold=row["threshold"],
        flagged=bool(row["flagged"]),
        sample_size=row["sample_size"],
        details=_details(row["details"]) if details else {},
    )


def insert(storage: Storage, rows: Sequence[StatRow]) -> None:
    """Store a window's statistics (a newer computation of the same keys replaces the older)."""
    if rows:
        storage.insert_json("window_stats", orjson.dumps([_stat_json(row) for row in rows]))


def read(
    storage: Storage,
    project: str,
    family: str,
    *,
    model: str | None,
    model_version: str,
    metric: str | None,
    dimension: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[StatRow]:
    """One family's rows of the windows overlapping ``[since, until)`` (``None`` filters nothing), by
    window start, model, metric and dimension; at most ``limit``."""
    clauses = ["project = {project:String}", "family = {family:String}", "model_version = {model_version:String}"]
    params: dict[str, Any] = {"project": project, "family": family, "limit": limit, "model_version": model_version}
    for name, value in (("model", model), ("metric", metric), ("dimension", dimension)):
        if value is not None:
            clauses.append(f"{name} = {{{name}:String}}")
            params[name] = value
    clauses += time_range(params, since, until, column="window_start", end_column="window_end")
    rows = storage.rows(
        f"SELECT {_STAT_COLUMNS} FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "ORDER BY window_start, model, metric, dimension LIMIT {limit:UInt32}",
        params,
    )
    return [_stat_row(row) for row in rows]


def model_series(
    storage: Storage,
    project: str,
    model: str,
    metrics: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> list[StatRow]:
    """The model-wide rows of ``metrics`` (every family) of the windows overlapping the range, by window
    start, metric and dimension; ``details`` not read (one query for a whole page of charts)."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version = ''",
        "metric IN {metrics:Array(String)}",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "metrics": list(metrics)}
    clauses += time_range(params, since, until, column="window_start", end_column="window_end")
    rows = storage.query(
        "SELECT family, window_start, window_end, metric, dimension, value, p_value, threshold, flagged, sample_size "
        f"FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "ORDER BY window_start, metric, dimension LIMIT 200000",
        params,
    ).result_rows
    moments: dict[datetime, datetime] = {}  # rows share their window bounds: convert each once
    out = []
    for family, start, end, metric, dimension, value, p_value, threshold, flagged, size in rows:
        if start not in moments:
            moments[start] = as_utc(start)
        if end not in moments:
            moments[end] = as_utc(end)
        out.append(
            StatRow(
                project,
                model,
                moments[start],
                moments[end],
                family,
                metric,
                value,
                dimension=dimension,
                p_value=p_value,
                threshold=threshold,
                flagged=bool(flagged),
                sample_size=size,
            )
        )
    return out


def latest_windows(
    storage: Storage, project: str, series: Sequence[tuple[str, str]], windows: int, now: datetime
) -> list[StatRow]:
    """Every model's last ``windows`` windows that start by ``now`` (a window stamped in the future, e.g.
    by a client's wrong clock, never becomes "latest"): their model-wide rows of ``series`` — (family,
    metric) pairs, dimension '' except for ``family_drift``, whose every family is read — newest first.

    Each model's last windows are found on the key columns of one series first, then only those windows
    are read, each row's newest version kept (what FINAL keeps: ``ReplacingMergeTree(computed_at)``)
    without FINAL's merge of every part of the project."""
    db = storage.database
    params: dict[str, Any] = {"project": project, "windows": windows, "now": ch_time(now)}
    wanted = []
    for index, (family, metric) in enumerate(series):
        params[f"f{index}"], params[f"m{index}"] = family, metric
        dimension = "" if metric == "family_drift" else " AND dimension = ''"
        wanted.append(f"(family = {{f{index}:String}} AND metric = {{m{index}:String}}{dimension})")
    rows = storage.query(
        "SELECT family, model, metric, dimension, window_start, window_end, value, flagged, sample_size FROM ("
        "SELECT family, model, metric, dimension, window_start, window_end, value, flagged, sample_size "
        f"FROM {db}.window_stats WHERE project = {{project:String}} AND model_version = '' "
        f"AND ({' OR '.join(wanted)}) AND (model, window_start) IN "
        f"(SELECT model, window_start FROM {db}.window_stats WHERE project = {{project:String}} "
        "AND family = 'latency' AND metric = 'count' AND dimension = '' AND model_version = '' "
        "AND window_start <= {now:DateTime64(3, 'UTC')} "
        "ORDER BY window_start DESC LIMIT {windows:UInt32} BY model) "
        "ORDER BY computed_at DESC LIMIT 1 BY model, metric, dimension, window_start"
        ") ORDER BY window_start DESC LIMIT {windows:UInt32} BY model, metric, dimension",
        params,
    ).result_rows
    return [
        StatRow(
            project,
            str(model),
            as_utc(start),
            as_utc(end),
            family,
            str(metric),
            float(value),
            dimension=str(dimension),
            flagged=bool(flagged),
            sample_size=int(size),
        )
        for family, model, metric, dimension, start, end, value, flagged, size in rows
    ]


def reference_means(storage: Storage, project: str, metrics: Sequence[str]) -> list[ReferenceMean]:
    """Each model's mean of ``metrics`` (model-wide rows) over its reference range (the active
    reference of the ``references`` table: the explicit slot when there is one, else the first
    window); none for a model whose reference is an uploaded dataset (it has no range)."""
    db = storage.database
    rows = storage.query(
        f"SELECT s.model, s.metric, avg(s.value) FROM {db}.window_stats AS s FINAL "
        "INNER JOIN (SELECT model, argMax(range_start, (explicit, created_at)) AS rs, "
        "argMax(range_end, (explicit, created_at)) AS re "
        f"FROM {db}.references FINAL WHERE project = {{project:String}} GROUP BY model) AS r ON s.model = r.model "
        "WHERE s.project = {project:String} AND s.model_version = '' AND s.dimension = '' "
        "AND s.metric IN {metrics:Array(String)} AND r.rs IS NOT NULL "
        # a bound on the primary key before the join: only windows inside some model's reference range
        f"AND s.window_start >= (SELECT min(range_start) FROM {db}.references WHERE project = {{project:String}}) "
        f"AND s.window_start < (SELECT max(range_end) FROM {db}.references WHERE project = {{project:String}}) "
        "AND s.window_start >= r.rs AND s.window_end <= r.re GROUP BY s.model, s.metric",
        {"project": project, "metrics": list(metrics)},
    ).result_rows
    return [ReferenceMean(str(model), str(metric), float(mean)) for model, metric, mean in rows]


def column_drift_counts(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None, top: int
) -> list[ColumnDriftCount]:
    """The model's columns by the number of windows they drifted in over the range, then by their
    smallest p-value (at most ``top``)."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version = ''",
        "family = 'drift'",
        "metric = 'column_drift'",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "top": top}
    clauses += time_range(params, since, until, column="window_start", end_column="window_end")
    rows = storage.query(
        "SELECT dimension, sum(flagged) AS drifted, count() AS windows, min(p_value) AS min_p "
        f"FROM {storage.database}.window_stats FINAL WHERE {' AND '.join(clauses)} "
        "GROUP BY dimension ORDER BY drifted DESC, min_p ASC, dimension LIMIT {top:UInt32}",
        params,
    ).result_rows
    return [ColumnDriftCount(str(name), int(drifted), int(windows), min_p) for name, drifted, windows, min_p in rows]


def version_rows(
    storage: Storage, project: str, model: str, metric: str, since: datetime | None, until: datetime | None
) -> list[StatRow]:
    """One metric's rows (dimension '') of every named model version (latency and cost are written per
    version), by version and window start; ``details`` not read."""
    clauses = [
        "project = {project:String}",
        "model = {model:String}",
        "model_version != ''",
        "metric = {metric:String}",
        "dimension = ''",
    ]
    params: dict[str, Any] = {"project": project, "model": model, "metric": metric}
    clauses += time_range(params, since, until, column="window_start", end_column="window_end")
    rows = storage.query(
        "SELECT family, model_version, window_start, window_end, value, sample_size "
        f"FROM {storage.database}.window_stats FINAL "
        f"WHERE {' AND '.join(clauses)} ORDER BY model_version, window_start LIMIT 100000",
        params,
    ).result_rows
    return [
        StatRow(
            project,
            model,
            as_utc(start),
            as_utc(end),
            family,
            metric,
            float(value),
            model_version=str(version),
            sample_size=int(size),
        )
        for family, version, start, end, value, size in rows
    ]


def window_span(storage: Storage, project: str, model: str, now: datetime) -> WindowSpan | None:
    """The span of the model's closed windows as of ``now`` (None: no closed window yet)."""
    row = storage.query(
        "SELECT min(window_start), maxIf(window_end, window_start <= {now:DateTime64(3, 'UTC')}), "
        "uniqExactIf(window_start, window_start > {now:DateTime64(3, 'UTC')}), uniqExact(window_start) "
        f"FROM {storage.database}.window_stats "
        "WHERE project = {project:String} AND model = {model:String} AND family = 'latency' AND metric = 'count' "
        "AND dimension = '' AND model_version = ''",
        {"project": project, "model": model, "now": ch_time(now)},
    ).result_rows[0]
    if not row[3]:
        return None
    past = int(row[3]) - int(row[2])
    return WindowSpan(as_utc(row[0]), as_utc(row[1]) if past else None, int(row[2]))


def spend_history(storage: Storage, key: WindowKey, windows: int) -> list[tuple[datetime, float]]:
    """The model's total spend in the ``windows`` windows before ``key``, oldest first (model-wide
    rows only: per-version rows would mix into the spend-anomaly baseline)."""
    rows = storage.query(
        f"SELECT window_start, value FROM {storage.database}.window_stats FINAL "
        "WHERE project = {project:String} AND model = {model:String} AND family = 'cost' "
        "AND metric = 'cost_usd' AND dimension = '' AND model_version = '' "
        "AND window_start < {start:DateTime64(3, 'UTC')} ORDER BY window_start DESC LIMIT {n:UInt32}",
        {"project": key.project, "model": key.model, "start": ch_time(key.start), "n": windows},
    ).result_rows
    return [(as_utc(start), float(value)) for start, value in reversed(rows)]


def column_drift(storage: Storage, project: str, model: str, window_start: datetime) -> list[StatRow]:
    """A window's stored model-wide ``column_drift`` rows (one per column)."""
    rows = storage.rows(
        f"SELECT {_STAT_COLUMNS} FROM {storage.database}.window_stats FINAL "
        "WHERE project = {project:String} AND model = {model:String} AND family = 'drift' "
        "AND metric = 'column_drift' AND model_version = '' AND window_start = {start:DateTime64(3, 'UTC')}",
        {"project": project, "model": model, "start": ch_time(window_start)},
    )
    return [_stat_row(row) for row in rows]


def windows_without_stats(storage: Storage, window_seconds: int, lookback_hours: int) -> list[WindowKey]:
    """The windows of the last ``lookback_hours`` that have inferences but no statistics (a process
    stopped before it closed them), across every project."""
    seconds = int(window_seconds)
    db = storage.database
    rows = storage.query(
        "SELECT project, model, toStartOfInterval(timestamp, "
        f"INTERVAL {seconds} SECOND) AS ws FROM {db}.inferences "
        f"WHERE timestamp > now64(3) - INTERVAL {int(lookback_hours)} HOUR GROUP BY project, model, ws "
        f"HAVING (project, model, ws) NOT IN (SELECT project, model, window_start FROM {db}.window_stats "
        "WHERE family = 'latency' AND metric = 'count')"
    ).result_rows
    return [
        WindowKey(project, model, as_utc(start), as_utc(start) + timedelta(seconds=seconds))
        for project, model, start in rows
    ]


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's statistics of windows that ended before ``cutoff``."""
    return expiry.expire(storage, "window_stats", project, "window_end", cutoff)
