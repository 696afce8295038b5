"""Who is sending: the ``model_activity`` aggregate (events and newest event time per model and hour,
filled by a materialized view on ``inferences``) and the few raw reads no-data monitors need.

A no-data sweep reads the aggregate (a few rows per model and hour), never the raw table, to learn
when each model last sent; only ``below_share`` monitors count the raw rows of the last ``for``
seconds of one model, and only ``group_by`` monitors read a tag of the raw rows of the lookback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

_T = "DateTime64(3, 'UTC')"


@dataclass(frozen=True, slots=True)
class Silence:
    """A source (a model, or one tag value of it) and the time of its newest event."""

    model: str
    last_at: datetime
    entity: str = ""  # 'route=/chat' for a group_by monitor; '' for the whole model


def last_seen(storage: Storage, project: str, models: Sequence[str] | None, *, since: datetime) -> dict[str, datetime]:
    """model → its newest event time, for the models (all when None) with events at or after ``since``."""
    where = " AND model IN {models:Array(String)}" if models is not None else ""
    rows = storage.query(
        f"SELECT model, max(last_at) AS last FROM {storage.database}.model_activity "
        f"WHERE project = {{project:String}} AND hour >= toStartOfHour({{since:{_T}}}){where} "
        f"GROUP BY model HAVING last >= {{since:{_T}}}",
        {"project": project, "since": ch_time(since), "models": list(models or [])},
    ).result_rows
    return {model: as_utc(last) for model, last in rows}


def events_between(storage: Storage, project: str, model: str, start: datetime, end: datetime) -> int:
    """Events of ``model`` stamped in [start, end): a range of the raw table's sort key."""
    return int(
        storage.scalar(
            f"SELECT count() FROM {storage.database}.inferences WHERE project = {{project:String}} "
            f"AND model = {{model:String}} AND timestamp >= {{start:{_T}}} AND timestamp < {{end:{_T}}}",
            {"project": project, "model": model, "start": ch_time(start), "end": ch_time(end)},
        )
        or 0
    )


def usual_hourly_rate(storage: Storage, project: str, model: str, *, at: datetime, weeks: int = 4) -> float | None:
    """Mean events per hour of ``model`` in the same hour of the week as ``at`` over the previous
    ``weeks`` weeks (the weeks with events in that hour); None without such history."""
    hour = as_utc(at).replace(minute=0, second=0, microsecond=0)
    hours = [(hour - timedelta(weeks=n)).strftime("%Y-%m-%d %H:%M:%S") for n in range(1, weeks + 1)]
    value = storage.scalar(
        "SELECT avg(events) FROM (SELECT hour, sum(events) AS events "
        f"FROM {storage.database}.model_activity WHERE project = {{project:String}} AND model = {{model:String}} "
        "AND hour IN (SELECT toDateTime(arrayJoin({hours:Array(String)}), 'UTC')) GROUP BY hour)",
        {"project": project, "model": model, "hours": hours},
    )
    if value is None or value != value:  # NULL / NaN: no history
        return None
    return float(value)


def silent_entities(
    storage: Storage,
    project: str,
    model: str,
    tag: str,
    *,
    since: datetime,
    quiet_since: datetime,
    limit: int,
) -> list[Silence]:
    """Values of tag ``tag`` that had events of ``model`` at or after ``since`` but none at or after
    ``quiet_since``; the ``limit`` that went quiet last first."""
    rows = storage.query(
        f"SELECT tags[{{tag:String}}] AS entity, max(timestamp) AS last FROM {storage.database}.inferences "
        f"WHERE project = {{project:String}} AND model = {{model:String}} AND timestamp >= {{since:{_T}}} "
        "AND mapContains(tags, {tag:String}) "
        f"GROUP BY entity HAVING last < {{quiet:{_T}}} ORDER BY last DESC, entity LIMIT {{limit:UInt32}}",
        {
            "project": project,
            "model": model,
            "tag": tag,
            "since": ch_time(since),
            "quiet": ch_time(quiet_since),
            "limit": limit,
        },
    ).result_rows
    return [Silence(model, as_utc(last), f"{tag}={entity}") for entity, last in rows]


def entity_last_seen(
    storage: Storage, project: str, model: str, tag: str, values: Sequence[str], *, since: datetime
) -> dict[str, datetime]:
    """'tag=value' → newest event time at or after ``since``, for the given values of ``tag``."""
    if not values:
        return {}
    rows = storage.query(
        f"SELECT tags[{{tag:String}}] AS entity, max(timestamp) FROM {storage.database}.inferences "
        f"WHERE project = {{project:String}} AND model = {{model:String}} AND timestamp >= {{since:{_T}}} "
        "AND tags[{tag:String}] IN {values:Array(String)} GROUP BY entity",
        {"project": project, "model": model, "tag": tag, "since": ch_time(since), "values": list(values)},
    ).result_rows
    return {f"{tag}={entity}": as_utc(last) for entity, last in rows}
