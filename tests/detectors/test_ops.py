"""Spend anomaly rule and latency/error summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import is_error_status, latency_summary, spend_anomaly


class TestSpendAnomaly:
    """Median/MAD robust z-score with documented fallbacks."""

    def test_robust_z_formula(self) -> None:
        history = [10.0, 12.0, 11.0, 13.0, 9.0, 10.5, 11.5]
        result = spend_anomaly(history, 30.0)
        median = float(np.median(history))
        mad = float(np.median(np.abs(np.array(history) - median)))
        assert result.robust_z == pytest.approx(0.6745 * (30.0 - median) / mad)
        assert result.is_anomaly
        assert result.direction == "up"
        assert result.scale_method == "mad"
        assert not spend_anomaly(history, 12.5).is_anomaly

    def test_drop_is_flagged_down(self) -> None:
        result = spend_anomaly([100, 104, 98, 101, 99, 102], 10)
        assert result.is_anomaly
        assert result.direction == "down"

    def test_single_spike_in_history_does_not_mask(self) -> None:
        history = [10, 11, 10, 12, 11, 500, 10, 11]
        assert spend_anomaly(history, 40).is_anomaly  # a mean/std rule would miss this

    def test_zero_mad_fallbacks(self) -> None:
        mostly_flat = [5, 5, 5, 5, 6, 9]
        result = spend_anomaly(mostly_flat, 20)
        deviations = np.abs(np.array(mostly_flat) - 5)
        assert result.scale_method == "mean_ad"
        assert result.robust_z == pytest.approx(15 / (1.253314 * deviations.mean()))
        flat = spend_anomaly([0.0, 0.0, 0.0], 0.01)
        assert flat.scale_method == "none"
        assert math.isinf(flat.robust_z)
        assert flat.is_anomaly
        assert not spend_anomaly([3.0, 3.0, 3.0], 3.0).is_anomaly

    def test_insufficient_history(self) -> None:
        result = spend_anomaly([1.0, float("nan"), 2.0], 100.0)
        assert result.status == "insufficient_data"
        assert not result.is_anomaly
        assert result.n_history == 2
        assert spend_anomaly([1.0, 2.0], 100.0, min_history=2).is_anomaly


class TestLatencySummary:
    """Percentiles equal numpy's linear interpolation; errors follow the documented status rule."""

    def test_percentiles_match_numpy(self) -> None:
        rng = np.random.default_rng(0)
        latencies = rng.lognormal(5, 0.7, 1001)
        result = latency_summary(latencies)
        for q, value in ((50, result.p50), (95, result.p95), (99, result.p99)):
            assert value == np.percentile(latencies, q, method="linear")
        assert result.mean == pytest.approx(latencies.mean())
        assert result.max == latencies.max()
        assert result.count == 1001
        assert result.error_count == 0
        assert result.error_rate == 0.0

    def test_missing_latencies_and_statuses(self) -> None:
        latencies = [100.0, None, 300.0, float("nan"), 200.0]
        statuses = [200, 503, "ok", "timeout", None]
        result = latency_summary(latencies, statuses)
        assert result.count == 5
        assert result.p50 == 200.0
        assert result.error_count == 2
        assert result.error_rate == pytest.approx(0.4)

    def test_status_rule(self) -> None:
        assert is_error_status(500)
        assert is_error_status("429")
        assert is_error_status(0)
        assert not is_error_status(204)
        assert not is_error_status("SUCCESS")
        assert not is_error_status(None)
        assert is_error_status("rate_limited")
        assert is_error_status(False)
        assert not is_error_status(True)

    def test_custom_rule_and_empty(self) -> None:
        result = latency_summary([1.0, 2.0], ["E1", "fine"], is_error=lambda s: str(s).startswith("E"))
        assert result.error_count == 1
        empty = latency_summary([])
        assert empty.count == 0
        assert math.isnan(empty.p50)
        assert math.isnan(empty.error_rate)
        with pytest.raises(ValueError, match="statuses"):
            latency_summary([1.0], [200, 200])
