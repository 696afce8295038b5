"""A statistic of one model over a rolling range (the last hour or day up to a window's end).

Counts, sums and rates compose from the stored window statistics (``window_stats``: one row per
window); quantiles and means do not (a p95 of p95s is not a p95), so they are computed from the raw
rows of the range — ``quantileExactInclusive``, numpy's default linear interpolation, as the window
statistics compute theirs. Privacy shares and counts too, from the calls' stored redaction counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from streams.storage.client import Storage
from streams.storage.entity_stats import PRIVACY_AGGREGATES, aggregate, privacy_params
from streams.storage.times import ch_time

_T = "DateTime64(3, 'UTC')"

# metrics summed from window_stats rows; error_rate is their error_count over their count
COMPOSED = ("count", "error_count", "error_rate", "cost_usd", "input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class RollingValue:
    value: float
    sample_size: int
    windows: int  # stored windows it was composed from (0: computed from raw rows)


def rolling_value(
    storage: Storage,
    project: str,
    model: str,
    family: str,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    dimension: str = "",
) -> RollingValue | None:
    """``metric`` of ``model`` over [start, end); None when the range holds nothing to judge.
    ``dimension``: a privacy metric's field or field and kind (from the calls' stored counts)."""
    params = {"project": project, "model": model, "start": ch_time(start), "end": ch_time(end)}
    if metric in PRIVACY_AGGREGATES:
        params.update(privacy_params(dimension))
    if metric in COMPOSED:
        wanted = ["count", "error_count"] if metric == "error_rate" else [metric]
        rows = storage.query(
            "SELECT metric, sum(value), sum(sample_size), count() FROM ("
            f"SELECT metric, value, sample_size FROM {storage.database}.window_stats FINAL "
            "WHERE project = {project:String} AND model = {model:String} AND family = {family:String} "
            f"AND window_start >= {{start:{_T}}} AND window_end <= {{end:{_T}}} "
            "AND metric IN {metrics:Array(String)} AND dimension = '' AND model_version = '') GROUP BY metric",
            {**params, "family": family, "metrics": wanted},
        ).result_rows
        found = {name: (float(total), int(samples), int(windows)) for name, total, samples, windows in rows}
        if metric == "error_rate":
            count, errors = found.get("count"), found.get("error_count", (0.0, 0, 0))
            if count is None or count[0] <= 0:
                return None
            return RollingValue(errors[0] / count[0], int(count[0]), count[2])
        if metric not in found:
            return None
        total, samples, windows = found[metric]
        return RollingValue(total, samples, windows)
    value, counted = aggregate(metric)
    row = storage.query(
        f"SELECT {value}, {counted} FROM {storage.database}.inferences FINAL "
        "WHERE project = {project:String} AND model = {model:String} "
        f"AND timestamp >= {{start:{_T}}} AND timestamp < {{end:{_T}}}",
        params,
    ).result_rows[0]
    if not row[1]:
        return None
    return RollingValue(float(row[0]), int(row[1]), 0)
