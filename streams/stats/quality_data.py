"""Feedback of one window's inferences, shaped for the quality detectors.

Feedback belongs to the window of its inference (not of its own timestamp), so feedback that arrives
hours late changes the quality of the window where the judged call happened. Per inference and kind
the newest feedback counts (a user who flips thumbs-down to thumbs-up counts once, as up).

Ground truth comes from people: labels that evaluators write (``source`` ``evaluator``) are not counted
as the classification's true labels. Evaluator scores count under ``scores`` (by evaluator id) and,
again, under ``judge_scores``, from which the estimated thumbs-up rate is computed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from schemas.stats import WindowKey
from streams.storage import Storage
from streams.storage.feedback import JudgedFeedback, window_feedback

EVALUATOR_SOURCE = "evaluator"  # the source of online evaluators' results
# Feedback judges a call that happened before it; this much earlier is still taken (clocks disagree).
CLOCK_SKEW = timedelta(hours=1)


def fetch_quality(storage: Storage, key: WindowKey) -> dict[str, Any]:
    """The window's quality data, all versions together (see ``fetch_quality_by_version``)."""
    return _shape(_feedback_rows(storage, key))


def fetch_quality_by_version(storage: Storage, key: WindowKey) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One read: the window's quality data, and the same split by the judged inference's model version
    (unnamed versions only in the first)."""
    rows = _feedback_rows(storage, key)
    by_version: dict[str, list[JudgedFeedback]] = {}
    for row in rows:
        if row.model_version:
            by_version.setdefault(row.model_version, []).append(row)
    return _shape(rows), {version: _shape(part) for version, part in sorted(by_version.items())}


def _feedback_rows(storage: Storage, key: WindowKey) -> list[JudgedFeedback]:
    """Newest feedback per (inference, kind, name) for the window's inferences, from ``CLOCK_SKEW``
    before the window on."""
    return window_feedback(storage, key, key.start - CLOCK_SKEW)


def _shape(rows: list[JudgedFeedback]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "thumbs": [],
        "ratings": [],
        "scores": {},
        "judge_scores": {},
        "labels": [],
        "feedback_count": len(rows),
    }
    for row in rows:
        kind, value = row.kind, row.value
        if kind == "thumbs" and value is not None:
            out["thumbs"].append(value)
        elif kind == "rating" and value is not None:
            out["ratings"].append(value)
        elif kind == "score" and value is not None:
            out["scores"].setdefault(row.name, []).append(value)
            if row.source == EVALUATOR_SOURCE:
                out["judge_scores"].setdefault(row.name, []).append(value)
        elif kind == "label" and row.prediction != "" and row.source != EVALUATOR_SOURCE:
            out["labels"].append((row.label, _label(row.prediction)))
    return out


def _label(prediction: str) -> str:
    """Predictions are stored as strings; numeric ones compare like labels do (2.0 == "2")."""
    try:
        number = float(prediction)
    except ValueError:
        return prediction
    return str(int(number)) if number.is_integer() else prediction
