"""One function per statistics family: a window's raw data in, ``StatRow``s out (no I/O here)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors import (
    DatasetDriftResult,
    accuracy_change,
    classification_quality,
    dataset_drift,
    latency_summary,
    pii_counts,
    proportion_change,
    ratings_change,
    score_change,
    spend_anomaly,
)
from detectors.family_drift import FAMILY_ALPHA, ColumnEvidence, FamilyVerdict, family_drift, family_verdict
from detectors.kinds import Correction
from schemas.stats import Family, StatRow, WindowKey
from streams.stats.judge_agreement import JudgeEstimate
from streams.stats.references import Reference
from streams.stats.window_data import DriftColumns, WindowRows

ALPHA = 0.05
# Drift families: which columns each holds (by name prefix, as ``window_data.drift_columns`` names them).
COLUMN_FAMILIES: dict[str, str] = {"feature.": "features", "prompt.": "prompt", "response.": "response"}


def _row(key: WindowKey, family: Family, metric: str, value: float, **fields: Any) -> StatRow:
    return StatRow(key.project, key.model, key.start, key.end, family, metric, float(value), **fields)


def latency_rows(key: WindowKey, latencies: np.ndarray, statuses: Sequence[str]) -> list[StatRow]:
    summary = latency_summary(latencies, statuses)
    n = summary.count
    rows = [
        _row(key, "latency", "count", n, sample_size=n),
        _row(key, "latency", "error_count", summary.error_count, sample_size=n),
        _row(key, "latency", "error_rate", summary.error_rate, sample_size=n),
    ]
    measured = int(np.isfinite(latencies).sum())
    for metric, value in (
        ("latency_p50_ms", summary.p50),
        ("latency_p95_ms", summary.p95),
        ("latency_p99_ms", summary.p99),
        ("latency_mean_ms", summary.mean),
    ):
        if value is not None and math.isfinite(value):
            rows.append(_row(key, "latency", metric, value, sample_size=measured))
    return rows


def privacy_rows(key: WindowKey, pii: Sequence[Mapping[str, int]]) -> list[StatRow]:
    """Per scanned field and per field and kind (``detectors.pii``): the share of events with at least one
    entity, the entities found and the events scanned. No rows when nothing was scanned (redaction off)."""
    rows = []
    for count in pii_counts(pii):
        details = {"events_with_pii": count.with_entities, "entities": count.entities}
        rows += [
            _row(
                key,
                "privacy",
                "share_with_pii",
                count.share,
                dimension=count.dimension,
                sample_size=count.scanned,
                details=details,
            ),
            _row(key, "privacy", "entity_count", count.entities, dimension=count.dimension, sample_size=count.scanned),
            _row(key, "privacy", "scanned_events", count.scanned, dimension=count.dimension, sample_size=count.scanned),
        ]
    return rows


def cost_totals(events: WindowRows) -> dict[str, float]:
    """What ``cost_rows`` needs of a window's events: spend, tokens, and how many events had no price."""
    priced = ~np.isnan(events.costs)
    tokens = np.nan_to_num(events.input_tokens) + np.nan_to_num(events.output_tokens)
    return {
        "events": float(len(events)),
        "cost_usd": float(events.costs[priced].sum()),
        "priced_events": float(priced.sum()),
        "unknown_cost_events": float((~priced & (tokens > 0)).sum()),
        "input_tokens": float(np.nan_to_num(events.input_tokens).sum()),
        "output_tokens": float(np.nan_to_num(events.output_tokens).sum()),
    }


MAX_TAG_VALUES = 100  # cost rows per window for tag values, the most expensive first


def cost_by_tag(events: WindowRows) -> list[tuple[str, str, float, int]]:
    """(tag, value, spend, events) per value of each of ``events.tag_keys``, most expensive first."""
    costs = np.nan_to_num(events.costs)
    found: list[tuple[str, str, float, int]] = []
    for tag, values in zip(events.tag_keys, events.tag_values, strict=True):
        present = np.fromiter((value is not None for value in values), dtype=bool, count=len(values))
        if not present.any():
            continue
        labels, inverse = np.unique(np.asarray(values, dtype=object)[present].astype(str), return_inverse=True)
        spend = np.bincount(inverse, weights=costs[present], minlength=len(labels))
        counts = np.bincount(inverse, minlength=len(labels))
        found += [
            (tag, str(label), float(total), int(count))
            for label, total, count in zip(labels, spend, counts, strict=True)
        ]
    found.sort(key=lambda item: -item[2])
    return found[:MAX_TAG_VALUES]


def cost_rows(
    key: WindowKey, totals: Mapping[str, float], by_tag: Sequence[tuple[str, str, float, int]], history: Sequence[float]
) -> list[StatRow]:
    n = int(totals["events"])
    rows = [
        _row(
            key,
            "cost",
            "cost_usd",
            totals["cost_usd"],
            sample_size=n,
            details={"priced_events": int(totals["priced_events"])},
        ),
        _row(key, "cost", "unknown_cost_events", totals["unknown_cost_events"], sample_size=n),
        _row(key, "cost", "input_tokens", totals["input_tokens"], sample_size=n),
        _row(key, "cost", "output_tokens", totals["output_tokens"], sample_size=n),
    ]
    for tag, value, cost, events in by_tag:
        rows.append(_row(key, "cost", "cost_usd", cost, dimension=f"tag:{tag}={value}", sample_size=events))
    anomaly = spend_anomaly(list(history), float(totals["cost_usd"]))
    if anomaly.status == "ok" and not math.isnan(anomaly.robust_z):
        details = {**anomaly.to_dict(), "history_median": anomaly.median}
        details["robust_z"] = str(anomaly.robust_z) if math.isinf(anomaly.robust_z) else anomaly.robust_z
        rows.append(
            _row(
                key,
                "cost",
                "spend_anomaly",
                float(np.clip(anomaly.robust_z, -1e9, 1e9)),
                flagged=anomaly.is_anomaly and anomaly.direction == "up",
                sample_size=len(history),
                threshold=anomaly.threshold,
                details=details,
            )
        )
    return rows


def drift_rows(
    key: WindowKey,
    reference: Reference,
    current: DriftColumns,
    *,
    drift_share: float,
    correction: Correction,
    embedding: ColumnEvidence | None = None,
) -> tuple[list[StatRow], DatasetDriftResult]:
    """Evidently's column and dataset rows, plus one ``family_drift`` verdict per family
    (:mod:`detectors.family_drift`); ``embedding`` is the window's embedding evidence when it has any."""
    result = dataset_drift(
        reference.profile, current.columns, drift_share=drift_share, column_types=current.kinds, correction=correction
    )
    rows = []
    for name, column in result.columns.items():
        if column.status != "ok":
            continue
        rows.append(
            _row(
                key,
                "drift",
                "column_drift",
                column.value,
                dimension=name,
                p_value=column.p_value,
                threshold=column.threshold,
                flagged=column.drifted,
                sample_size=column.n_current,
                details={
                    "method": column.method,
                    "column_type": column.column_type,
                    "n_reference": column.n_reference,
                    "adjusted_p_value": column.adjusted_p_value,
                },
            )
        )
    share = result.share_drifted if math.isfinite(result.share_drifted) else 0.0
    rows.append(
        _row(
            key,
            "drift",
            "dataset_drift",
            share,
            threshold=drift_share,
            flagged=result.dataset_drifted,
            sample_size=current.rows,
            details={
                "drifted_columns": result.drifted_columns,
                "columns": result.n_columns,
                "reference_kind": reference.kind,
                "reference_rows": reference.rows,
                "skipped": dict(result.skipped),
            },
        )
    )
    rows += family_rows(key, family_verdicts(reference, current, embedding), current.rows)
    return rows, result


def family_verdicts(
    reference: Reference, current: DriftColumns, embedding: ColumnEvidence | None = None
) -> list[FamilyVerdict]:
    """The verdict of each column family present, and of the embeddings; one false-alarm budget
    (``FAMILY_ALPHA`` per window) is shared by all of them."""
    families: dict[str, list[str]] = {}
    for name in current.columns:
        for prefix, family in COLUMN_FAMILIES.items():
            if name.startswith(prefix):
                families.setdefault(family, []).append(name)
    verdicts = family_drift(
        reference.profile,
        current.columns,
        families,
        column_types=current.kinds,
        extra_families=int(embedding is not None),
    )
    out = list(verdicts.values())
    if embedding is not None:
        share = FAMILY_ALPHA / (len(verdicts) + 1)
        out.append(family_verdict("embedding", [embedding], alpha=share))
    return out


def family_rows(key: WindowKey, verdicts: Sequence[FamilyVerdict], sample_size: int) -> list[StatRow]:
    """One ``drift / family_drift`` row per family: value = drifted share, p = the family's min-p."""
    return [
        _row(
            key,
            "drift",
            "family_drift",
            verdict.share_drifted,
            dimension=verdict.family,
            p_value=verdict.p_value,
            threshold=verdict.alpha,
            flagged=verdict.drifted,
            sample_size=sample_size,
            details={
                "drifted_columns": list(verdict.drifted_columns),
                "columns": verdict.n_columns,
                "strongest_column": verdict.strongest_column,
                "strongest_effect": verdict.strongest_effect,
                "min_effect": verdict.min_effect,
                "rule": "bonferroni_min_p_with_effect_gate",
                "evidence": family_evidence(verdict),
            },
        )
        for verdict in verdicts
    ]


def family_evidence(verdict: FamilyVerdict) -> list[dict[str, Any]]:
    """Each tested column of a family as the rule judged it (effect, adjusted p-value, means), drifted
    columns first, then by effect: what the alert, the window page and Slack show beside p-values."""
    drifted = set(verdict.drifted_columns)
    ordered = sorted(verdict.columns, key=lambda e: (e.column not in drifted, -e.effect, e.column))
    return [
        {
            "column": e.column,
            "test": e.test,
            "effect": e.effect,
            "p_value": verdict.adjusted_p_value(e),
            "drifted": e.column in drifted,
            "reference_mean": e.reference_mean,
            "current_mean": e.current_mean,
        }
        for e in ordered
    ]


def _degraded(change_p: float | None, current: float, reference: float, *, higher_is_better: bool = True) -> bool:
    if change_p is None or not math.isfinite(change_p):
        return False
    worse = current < reference if higher_is_better else current > reference
    return change_p < ALPHA and worse


def quality_rows(key: WindowKey, current: Mapping[str, Any], reference: Mapping[str, Any] | None) -> list[StatRow]:
    """Feedback-based quality of a window, each tested against the reference's feedback where it has any."""
    rows: list[StatRow] = [
        _row(key, "quality", "feedback_count", current["feedback_count"], sample_size=current["feedback_count"])
    ]
    thumbs = np.asarray(current["thumbs"], dtype=float)
    if thumbs.size:
        up, n = int((thumbs > 0).sum()), int(thumbs.size)
        details: dict[str, Any] = {"up": up, "n": n}
        p_value = None
        ref = np.asarray(reference["thumbs"], dtype=float) if reference else np.array([])
        if ref.size:
            change = proportion_change(int((ref > 0).sum()), int(ref.size), up, n)
            p_value = change.p_value
            details.update(reference=change.rate_ref, effect=change.difference, test=change.test)
        rate = up / n
        flagged = _degraded(p_value, rate, details.get("reference", rate))
        rows.append(
            _row(
                key,
                "quality",
                "thumbs_up_rate",
                rate,
                p_value=p_value,
                threshold=ALPHA,
                flagged=flagged,
                sample_size=n,
                details=details,
            )
        )
    for metric, values, ref_values, dimension in _rank_metrics(current, reference):
        cur = np.asarray(values, dtype=float)
        ref_arr = np.asarray(ref_values, dtype=float)
        details = {"n": int(cur.size)}
        p_value = None
        if ref_arr.size and cur.size:
            shift = ratings_change(ref_arr, cur) if metric == "mean_rating" else score_change(ref_arr, cur)
            p_value = shift.p_value
            details.update(reference=float(ref_arr.mean()), effect=shift.rank_biserial, test="mannwhitneyu")
        mean = float(cur.mean())
        flagged = _degraded(p_value, mean, details.get("reference", mean))
        rows.append(
            _row(
                key,
                "quality",
                metric,
                mean,
                dimension=dimension,
                p_value=p_value,
                threshold=ALPHA,
                flagged=flagged,
                sample_size=int(cur.size),
                details=details,
            )
        )
    labels = current["labels"]
    if labels:
        y_true, y_pred = [t for t, _ in labels], [p for _, p in labels]
        quality = classification_quality(y_true, y_pred)
        correct = sum(t == p for t, p in labels)
        details = {"n": len(labels)}
        p_value = None
        ref_labels = reference["labels"] if reference else []
        if ref_labels:
            change = accuracy_change(sum(t == p for t, p in ref_labels), len(ref_labels), correct, len(labels))
            p_value = change.p_value
            details.update(reference=change.rate_ref, effect=change.difference, test=change.test)
        flagged = _degraded(p_value, quality.accuracy, details.get("reference", quality.accuracy))
        rows.append(
            _row(
                key,
                "quality",
                "accuracy",
                quality.accuracy,
                p_value=p_value,
                threshold=ALPHA,
                flagged=flagged,
                sample_size=len(labels),
                details=details,
            )
        )
        rows.append(_row(key, "quality", "f1_macro", quality.macro_f1, sample_size=len(labels)))
    return rows


def estimate_rows(key: WindowKey, estimates: Mapping[str, JudgeEstimate]) -> list[StatRow]:
    """One ``quality / estimated_thumbs_up_rate`` row per evaluator that could give one (dimension = the
    evaluator id): the window's thumbs-up rate estimated from its judged calls, interval in the details,
    tested against the reference period's estimate (``detectors.calibration.estimate_change``) where the
    reference has judged calls; ``calibration`` says whether the model's own pairs or all models' were fitted."""
    rows = []
    for evaluator_id, judged in sorted(estimates.items()):
        estimate, change = judged.estimate, judged.change
        if estimate.rate is None:
            continue
        details: dict[str, Any] = {
            "low": estimate.low,
            "high": estimate.high,
            "judged_calls": estimate.judged_calls,
            "pairs": estimate.pairs,
            "method": estimate.method,
            "interval": estimate.interval,
            "calibration": judged.scope,
            "model_pairs": judged.model_pairs,
        }
        p_value = None
        if change is not None:
            p_value = change.p_value
            details.update(
                reference=change.reference_rate,
                reference_judged_calls=change.reference_calls,
                effect=change.difference,
                test=change.test,
            )
        rows.append(
            _row(
                key,
                "quality",
                "estimated_thumbs_up_rate",
                estimate.rate,
                dimension=evaluator_id,
                p_value=p_value,
                threshold=ALPHA,
                flagged=_degraded(p_value, estimate.rate, details.get("reference", estimate.rate)),
                sample_size=estimate.judged_calls,
                details=details,
            )
        )
    return rows


def _rank_metrics(
    current: Mapping[str, Any], reference: Mapping[str, Any] | None
) -> list[tuple[str, list[float], list[float], str]]:
    out = []
    if current["ratings"]:
        out.append(("mean_rating", current["ratings"], reference["ratings"] if reference else [], ""))
    for name, values in sorted(current["scores"].items()):
        ref_scores = reference["scores"].get(name, []) if reference else []
        out.append(("score_mean", values, ref_scores, name))
    return out
