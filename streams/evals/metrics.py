"""Prometheus metrics of online evaluations (the default registry: served with every other metric)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVALUATIONS = Counter(
    "loopwatch_evaluations_total",
    "Evaluations finished: done (a score stored), error (no score: judge or check failed), skipped.",
    ["status"],
)
SAMPLED = Counter("loopwatch_evaluations_sampled_total", "Calls sampled into the evaluation queue.")
SAMPLING_FAILURES = Counter(
    "loopwatch_evaluation_sampling_failures",
    "Sampling passes that failed (storage): the calls stored meanwhile are sampled by a later pass.",
)
JUDGE_RETRIES = Counter("loopwatch_evaluator_judge_retries_total", "Judge requests retried (429, 5xx, timeouts).")
OVER_BUDGET = Gauge(
    "loopwatch_evaluator_over_budget",
    "1 while an evaluator's daily budget (USD or calls) is spent: its sampling is stopped until the next UTC day.",
    ["project", "evaluator"],
)
JUDGE_COST = Counter("loopwatch_evaluator_judge_cost_usd_total", "Judge spend in USD (apart from the apps' cost).")
