"""An alert in words: the one place that says what breached, used by Slack, webhooks, the dashboard
and the demo, so every surface shows the same numbers.

``family_words`` words one drift family's verdict (``drift / family_drift`` row): how many of its
columns drifted and the column that moved most, in its own unit ("response family drifted: 8 of 11
columns, response.refusal 0 % → 100 %"). ``breach_words`` words the breaching rows of any monitor:
a family verdict as above, a threshold as "value op threshold", a p-value condition as the change
against the reference with its p-value and alpha. Numbers are the stored ones: the drifted share is
always the family's own (drifted / tested columns of that family), never Evidently's share over all
columns (``dataset_drift``), which is a different statistic with its own name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.stats import StatRow

_SHARE_COLUMNS = ("refusal", "has_question", "has_code_block")
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})  # Evidently's value of these tests *is* the p-value
_PERCENT_METRICS = frozenset(
    {"error_rate", "thumbs_up_rate", "estimated_thumbs_up_rate", "accuracy", "f1_macro", "dataset_drift"}
)
_UNITS = {"latency_p50_ms": " ms", "latency_p95_ms": " ms", "latency_p99_ms": " ms", "latency_mean_ms": " ms"}
_OPERATORS = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}


def number(value: float | None) -> str:
    """A number for people: thousands separated, at most 3 significant digits below 1000."""
    if value is None or not math.isfinite(value):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def percent(value: float) -> str:
    """A share as a percentage: whole above 10 %, two significant digits below (2.4 %, 0.73 %)."""
    share = value * 100
    return f"{share:.0f} %" if share == 0 or abs(share) >= 10 else f"{share:.2g} %"


def p_value_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.2g}"


def is_share_column(column: str) -> bool:
    """Descriptor columns whose values are shares or yes/no flags: their means read as percentages."""
    name = column.rsplit(".", 1)[-1]
    return name.endswith("_share") or name in _SHARE_COLUMNS


def column_change(column: str, reference_mean: float | None, current_mean: float | None) -> str:
    """``response.refusal 0 % → 100 %`` (mean before → mean now), or just the column name."""
    if reference_mean is None or current_mean is None:
        return column
    if not (math.isfinite(reference_mean) and math.isfinite(current_mean)):
        return column
    show = percent if is_share_column(column) else number
    return f"{column} {show(reference_mean)} → {show(current_mean)}"


def _strongest(evidence: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    drifted = [e for e in evidence if isinstance(e, Mapping) and e.get("drifted")]
    return max(drifted, key=lambda e: float(e.get("effect") or 0.0)) if drifted else None


def family_words(family: str, details: Mapping[str, Any], *, flagged: bool = True) -> str:
    """One drift family's verdict in words, from its ``family_drift`` row's ``details``."""
    drifted = details.get("drifted_columns") or []
    columns = int(details.get("columns") or 0)
    if not flagged or not drifted:
        return f"{family} family stable ({columns} columns tested)"
    text = f"{family} family drifted: {len(drifted)} of {columns} columns"
    evidence = details.get("evidence")
    strongest = _strongest(evidence) if isinstance(evidence, list) else None
    if strongest is not None:
        text += ", " + column_change(
            str(strongest.get("column", "")), strongest.get("reference_mean"), strongest.get("current_mean")
        )
    elif details.get("strongest_column"):
        text += f", most: {details['strongest_column']}"
    return text


def metric_value(metric: str, value: float) -> str:
    """A statistic's value in its unit (percent for rates, ms for latencies)."""
    if metric in _PERCENT_METRICS:
        return percent(value) if math.isfinite(value) else "–"
    if metric == "cost_usd":
        return f"${value:,.4f}"
    return number(value) + _UNITS.get(metric, "")


def _label(row: StatRow) -> str:
    return f"{row.metric} [{row.dimension}]" if row.dimension else row.metric


def breach_words(rows: Sequence[StatRow], *, condition: str, threshold: float | None) -> str:
    """What the breaching ``rows`` (worst first) of one monitor say, in one line.

    ``condition`` is the monitor's (``>``, ``p < 0.01, decrease``, ``flagged``); ``threshold`` its
    value for threshold and p-value conditions (None for ``flagged``: each row's own rule decides).
    """
    if not rows:
        return ""
    worst = rows[0]
    if worst.metric == "family_drift":
        return "; ".join(family_words(row.dimension, row.details) for row in rows)
    if worst.metric == "column_drift":
        parts = []
        for row in rows[:3]:
            method = str(row.details.get("method", ""))
            p = f", p = {p_value_text(row.p_value)}" if row.p_value is not None else ""
            parts.append(f"{row.dimension} drifted ({method} {number(row.value)}{p})")
        more = f" and {len(rows) - 3} more columns" if len(rows) > 3 else ""
        return "; ".join(parts) + more
    if worst.metric == "dataset_drift":
        drifted = worst.details.get("drifted_columns") or []
        columns = int(worst.details.get("columns") or 0)
        return (
            f"{len(drifted)} of {columns} columns drifted ({percent(worst.value)}, "
            f"Evidently's share rule flags at {percent(worst.threshold or 0.0)})"
        )
    value = metric_value(worst.metric, worst.value)
    if condition.startswith("p <"):
        reference = worst.details.get("reference")
        was = (
            f"reference {metric_value(worst.metric, float(reference))}; " if isinstance(reference, int | float) else ""
        )
        return f"{_label(worst)} {value} ({was}p = {p_value_text(worst.p_value)}, alert below {number(threshold)})"
    if condition in _OPERATORS and threshold is not None:
        return f"{_label(worst)} {value} {_OPERATORS[condition]} {metric_value(worst.metric, threshold)}"
    if worst.metric == "spend_anomaly":
        z = worst.details.get("robust_z")
        return f"spend anomaly: {value}" + (f" (robust z {number(float(z))})" if isinstance(z, int | float) else "")
    return f"{_label(worst)} {value} flagged"


def entity_words(rows: Sequence[StatRow], *, condition: str, threshold: float, total: int) -> str:
    """A group_by monitor's breach: how many tag values breached and the worst of them, with values
    ("3 user_id values with cost_usd > $20.0000: u-7 $31.0000, u-2 $25.0000, u-9 $21.0000")."""
    if not rows:
        return ""
    tag = rows[0].dimension.partition("=")[0]
    shown = ", ".join(f"{row.dimension.partition('=')[2]} {metric_value(row.metric, row.value)}" for row in rows[:5])
    more = f" and {total - 5} more" if total > 5 else ""
    noun = "value" if total == 1 else "values"
    op = _OPERATORS.get(condition, condition)
    return f"{total} {tag} {noun} with {rows[0].metric} {op} {metric_value(rows[0].metric, threshold)}: {shown}{more}"


def silence_words(
    model: str, entity: str, *, last_at: str, duration: str, share: float | None = None, rate: float | None = None
) -> str:
    """A no-data breach: who went quiet (or slow) since when."""
    who = f"{model} [{entity}]" if entity else model
    if share is not None and rate is not None:
        return (
            f"{who} sent {percent(rate)} of its usual rate for this hour over the last {duration} "
            f"(alert below {percent(share)})"
        )
    return f"no events from {who} for {duration} (last event {last_at})"
