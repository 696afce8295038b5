"""The statistics contract: one ``StatRow`` per computed number, as stored in ``window_stats``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Family = Literal["drift", "quality", "cost", "latency", "privacy"]
FAMILIES: tuple[Family, ...] = ("drift", "quality", "cost", "latency", "privacy")

DimensionKind = Literal["none", "column", "score", "tag", "family", "pii"]
# privacy dimensions: a scanned field (all kinds) or a field and a kind, ``response`` / ``response.EMAIL``
PII_FIELDS: tuple[str, ...] = ("prompt", "response", "tags", "features")
PII_DIMENSION = r"^(prompt|response|tags|features|correction|comment)(\.[A-Z][A-Z0-9_]{0,63})?$"
DRIFT_FAMILIES: tuple[str, ...] = ("features", "prompt", "response", "embedding")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What the statistics engine writes for one metric: its dimensions and which verdicts it carries."""

    dimensions: DimensionKind = "none"
    p_value: bool = False
    flagged: bool = False
    higher_is_better: bool | None = None  # the bad direction of a significant change (quality)
    additive: bool = False  # a count or a sum: adds up across windows when re-bucketed (else: weighted mean)


# The catalogue of every metric the statistics engine writes (one StatRow per number in window_stats):
# monitors validate against it, the stats API re-buckets by it, and a test holds the engine to it.
METRICS: dict[str, dict[str, MetricSpec]] = {
    "latency": {
        "count": MetricSpec(additive=True),
        "error_count": MetricSpec(additive=True),
        **dict.fromkeys(
            ("error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms"), MetricSpec()
        ),
    },
    "cost": {
        "cost_usd": MetricSpec(dimensions="tag", additive=True),
        "unknown_cost_events": MetricSpec(additive=True),
        "input_tokens": MetricSpec(additive=True),
        "output_tokens": MetricSpec(additive=True),
        "spend_anomaly": MetricSpec(flagged=True),
    },
    "drift": {
        "column_drift": MetricSpec(dimensions="column", p_value=True, flagged=True),
        "dataset_drift": MetricSpec(flagged=True),
        "family_drift": MetricSpec(dimensions="family", p_value=True, flagged=True),
    },
    "quality": {
        "thumbs_up_rate": MetricSpec(p_value=True, flagged=True, higher_is_better=True),
        # from an evaluator's scores, calibrated to thumbs (dimension = evaluator id; interval in details;
        # p-value against the reference period's estimate through the same fit)
        "estimated_thumbs_up_rate": MetricSpec(dimensions="score", p_value=True, flagged=True, higher_is_better=True),
        "mean_rating": MetricSpec(p_value=True, flagged=True, higher_is_better=True),
        "score_mean": MetricSpec(dimensions="score", p_value=True, flagged=True, higher_is_better=True),
        "accuracy": MetricSpec(p_value=True, flagged=True, higher_is_better=True),
        "f1_macro": MetricSpec(),
        "feedback_count": MetricSpec(additive=True),
    },
    # entities found by redaction at ingest (``detectors.pii``); dimension ``response`` or ``response.EMAIL``
    "privacy": {
        "share_with_pii": MetricSpec(dimensions="pii"),
        "entity_count": MetricSpec(dimensions="pii", additive=True),
        "scanned_events": MetricSpec(dimensions="pii", additive=True),
    },
}


def unknown_metric(family: str, metric: str) -> str | None:
    """Why ``metric`` is not one of ``family``'s (naming the ones it has), or None when it is."""
    known = METRICS[family]
    if metric in known:
        return None
    return f"{family!r} has no metric {metric!r}; choose one of: {', '.join(sorted(known))}"


ADDITIVE_METRICS: frozenset[str] = frozenset(
    metric for metrics in METRICS.values() for metric, spec in metrics.items() if spec.additive
)


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One tumbling window of one model."""

    project: str
    model: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class StatRow:
    """One statistic of one window. ``dimension`` names the feature/descriptor/tag ('' = whole model)."""

    project: str
    model: str
    window_start: datetime
    window_end: datetime
    family: Family
    metric: str
    value: float
    dimension: str = ""
    model_version: str = ""
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool = False
    sample_size: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> WindowKey:
        return WindowKey(self.project, self.model, self.window_start, self.window_end)
