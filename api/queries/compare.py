"""Reading two model versions' events and feedback over a time range for ``GET /v1/models/{m}/compare``."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from detectors import is_error_status
from streams.stats import drift_columns
from streams.stats.compare import VersionData
from streams.storage import Storage, ch_time

VERSION_RANGE = (
    "project = {project:String} AND model = {model:String} AND model_version = {version:String} "
    "AND timestamp >= {since:DateTime64(3, 'UTC')} AND timestamp < {until:DateTime64(3, 'UTC')}"
)


def _floats(values: list[object]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def fetch_version(
    storage: Storage, project: str, model: str, version: str, since: datetime, until: datetime, limit: int
) -> VersionData | None:
    """A deterministic sample (event-id hash) of at most ``limit`` events of the version in the range,
    and the newest feedback of each sampled event; ``None`` when the version has no event there."""
    db = storage.database
    params = {
        "project": project,
        "model": model,
        "version": version,
        "since": ch_time(since),
        "until": ch_time(until),
        "limit": limit,
    }
    rows = storage.query(
        "SELECT event_id, latency_ms, status, cost_usd, input_tokens, output_tokens, features, prompt, response "
        f"FROM {db}.inferences FINAL WHERE {VERSION_RANGE} ORDER BY cityHash64(event_id) LIMIT {{limit:UInt32}}",
        params,
    ).result_rows
    if not rows:
        return None
    ids = [r[0] for r in rows]
    feedback = storage.query(
        "SELECT kind, argMax(value, (timestamp, ingested_at)) AS value "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND kind IN ('thumbs', 'rating') "
        "AND inference_id IN {ids:Array(String)} GROUP BY inference_id, kind, name",
        {"project": project, "ids": ids},
    ).result_rows
    return VersionData(
        events=len(rows),
        latencies=_floats([r[1] for r in rows]),
        errors=sum(is_error_status(r[2]) for r in rows),
        costs=_floats([r[3] for r in rows]),
        input_tokens=_floats([r[4] for r in rows]),
        output_tokens=_floats([r[5] for r in rows]),
        columns=drift_columns([r[6] for r in rows], [r[7] for r in rows], [r[8] for r in rows]),
        thumbs=[float(v) for kind, v in feedback if kind == "thumbs" and v is not None],
        ratings=[float(v) for kind, v in feedback if kind == "rating" and v is not None],
    )
