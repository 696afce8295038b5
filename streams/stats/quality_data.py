"""Feedback of one window's inferences, shaped for the quality detectors.

Feedback belongs to the window of its inference (not of its own timestamp), so feedback that arrives
hours late changes the quality of the window where the judged call happened. Per inference and kind
the newest feedback counts (a user who flips thumbs-down to thumbs-up counts once, as up).
"""

from __future__ import annotations

from typing import Any

from schemas.stats import WindowKey
from streams.stats.window_data import IN_WINDOW, window_params
from streams.storage import Storage


def fetch_quality(storage: Storage, key: WindowKey) -> dict[str, Any]:
    db = storage.database
    rows = storage.query(
        "SELECT f.kind, f.name, argMax(f.value, f.timestamp), argMax(f.label, f.timestamp), any(i.prediction) "
        f"FROM {db}.feedback AS f FINAL "
        f"INNER JOIN (SELECT event_id, prediction FROM {db}.inferences FINAL WHERE {IN_WINDOW}) AS i "
        "ON f.inference_id = i.event_id "
        "WHERE f.project = {project:String} AND f.kind IN ('thumbs', 'rating', 'score', 'label') "
        "GROUP BY f.inference_id, f.kind, f.name",
        window_params(key),
    ).result_rows
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
