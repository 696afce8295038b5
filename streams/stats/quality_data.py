"""Feedback of one window's inferences, shaped for the quality detectors.

Feedback belongs to the window of its inference (not of its own timestamp), so feedback that arrives
hours late changes the quality of the window where the judged call happened. Per inference and kind
the newest feedback counts (a user who flips thumbs-down to thumbs-up counts once, as up).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from schemas.stats import WindowKey
from streams.stats.window_data import IN_WINDOW, window_params
from streams.storage import Storage, ch_time

# Feedback judges a call that happened before it; this much earlier is still taken (clocks disagree).
CLOCK_SKEW = timedelta(hours=1)


def fetch_quality(storage: Storage, key: WindowKey) -> dict[str, Any]:
    """The window's quality data, all versions together (see ``fetch_quality_by_version``)."""
    return _shape([row[:5] for row in _feedback_rows(storage, key)])


def fetch_quality_by_version(storage: Storage, key: WindowKey) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One read: the window's quality data, and the same split by the judged inference's model version
    (unnamed versions only in the first)."""
    rows = _feedback_rows(storage, key)
    by_version: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        if row[5]:
            by_version.setdefault(row[5], []).append(row[:5])
    return _shape([row[:5] for row in rows]), {version: _shape(part) for version, part in sorted(by_version.items())}


def _feedback_rows(storage: Storage, key: WindowKey) -> list[tuple[Any, ...]]:
    """Newest feedback per (inference, kind, name) for the window's inferences.

    The feedback side is narrowed before the join: by time (feedback from ``CLOCK_SKEW`` before the
    window on, read through the table's time-sorted projection) and by the window's ids, so the cost
    follows the window and the time since it, not the size of the table. No ``FINAL``: per group the
    newest timestamp wins and, among copies of one event, the newest ingestion (what a merge keeps).
    """
    db = storage.database
    params = {**window_params(key), "since": ch_time(key.start - CLOCK_SKEW)}
    window_ids = f"SELECT event_id FROM {db}.inferences WHERE {IN_WINDOW}"
    rows = storage.query(
        "SELECT f.kind, f.name, f.value, f.label, i.prediction, i.model_version FROM ("
        "SELECT inference_id, kind, name, argMax(value, (timestamp, ingested_at)) AS value, "
        "argMax(label, (timestamp, ingested_at)) AS label "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND timestamp >= {{since:DateTime64(3, 'UTC')}} "
        f"AND kind IN ('thumbs', 'rating', 'score', 'label') AND inference_id IN ({window_ids}) "
        "GROUP BY inference_id, kind, name) AS f "
        "INNER JOIN (SELECT event_id, argMax(prediction, ingested_at) AS prediction, "
        f"argMax(model_version, ingested_at) AS model_version FROM {db}.inferences WHERE {IN_WINDOW} "
        "GROUP BY event_id) AS i ON f.inference_id = i.event_id",
        params,
    ).result_rows
    return [tuple(row) for row in rows]


def _shape(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {"thumbs": [], "ratings": [], "scores": {}, "labels": [], "feedback_count": len(rows)}
    for kind, name, value, label, prediction in rows:
        if kind == "thumbs" and value is not None:
            out["thumbs"].append(value)
        elif kind == "rating" and value is not None:
            out["ratings"].append(value)
        elif kind == "score" and value is not None:
            out["scores"].setdefault(name, []).append(value)
        elif kind == "label" and prediction != "":
            out["labels"].append((label, _label(prediction)))
    return out


def _label(prediction: str) -> str:
    """Predictions are stored as strings; numeric ones compare like labels do (2.0 == "2")."""
    try:
        number = float(prediction)
    except ValueError:
        return prediction
    return str(int(number)) if number.is_integer() else prediction
