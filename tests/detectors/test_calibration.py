"""Platt calibration of a judge's scores to thumbs: the fit matches statsmodels' binomial GLM on Platt's
targets, the window estimate covers the thumbs it was not fitted on, no estimate is made up, and the
estimate's change against the reference is Welch's t-test on the predicted probabilities (statsmodels'
``ttest_ind``), which holds its false-alarm rate and finds more than a two-proportion test would."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.weightstats import ttest_ind
from statsmodels.stats.proportion import proportions_ztest

from detectors.calibration import MIN_PAIRS, calibrate, estimate_change, estimate_rate, fit_platt


def planted(seed: int, n: int, *, slope: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores in [0, 1] and thumbs drawn with P(up | s) = sigmoid(slope·(s - 0.5))."""
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    ups = rng.random(n) < 1 / (1 + np.exp(-slope * (scores - 0.5)))
    return scores, ups


class TestPlatt:
    """The fit is the maximum-likelihood logistic regression on Platt's smoothed targets."""

    @pytest.mark.parametrize("seed", [1, 2])
    def test_matches_statsmodels_glm(self, seed: int) -> None:
        scores, ups = planted(seed, 400)
        positives, negatives = int(ups.sum()), int((~ups).sum())
        targets = np.where(ups, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        glm = sm.GLM(targets, sm.add_constant(scores), family=sm.families.Binomial()).fit()
        fit = fit_platt(scores, ups)
        assert (fit.intercept, fit.slope) == pytest.approx(tuple(glm.params), abs=1e-7)
        assert fit.predict(scores) == pytest.approx(glm.predict(sm.add_constant(scores)), abs=1e-9)

    def test_a_separating_judge_gets_finite_odds(self) -> None:
        fit = fit_platt([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
        assert np.isfinite([fit.intercept, fit.slope]).all()
        assert 0.5 < fit.predict(np.array([0.9]))[0] < 1


class TestWindowEstimate:
    """Fitted on one part, the estimate of a window covers the actual rate of thumbs held back."""

    def test_covers_held_back_thumbs(self) -> None:
        scores, ups = planted(7, 600)
        calibration = calibrate(list(scores[:400]), list(ups[:400]))
        assert calibration.usable, calibration.reason
        window_scores, held_back = scores[400:], ups[400:]
        estimate = estimate_rate(calibration, list(window_scores))
        assert estimate.rate is not None and estimate.low is not None and estimate.high is not None
        assert estimate.low <= held_back.mean() <= estimate.high
        assert estimate.rate == pytest.approx(held_back.mean(), abs=0.06)
        assert estimate.high - estimate.low < 0.2
        assert (estimate.judged_calls, estimate.pairs) == (200, 400)
        assert estimate_rate(calibration, list(window_scores)) == estimate  # seeded: the same figures

    def test_no_estimate_below_the_minimums(self) -> None:
        scores, ups = planted(8, MIN_PAIRS - 1)
        few = calibrate(list(scores), list(ups))
        assert few.fit is None
        assert f"only {MIN_PAIRS - 1} calls have both" in few.reason
        assert estimate_rate(few, [0.5, 0.6]).rate is None
        noise_scores, noise_ups = planted(9, 400, slope=0.0)
        weak = calibrate(list(noise_scores), list(noise_ups))
        assert weak.fit is None
        assert "does not predict thumbs well enough" in weak.reason
        good = calibrate(*map(list, planted(10, 200)))
        empty = estimate_rate(good, [])
        assert (empty.rate, empty.reason) == (None, "the window has no judged calls")

    def test_a_judge_agreeing_in_reverse_still_predicts(self) -> None:
        scores, ups = planted(11, 400, slope=-8.0)  # a toxicity-like judge: high score, thumbs down
        calibration = calibrate(list(scores), list(ups))
        assert calibration.agreement.value is not None and calibration.agreement.value < -0.4
        estimate = estimate_rate(calibration, [0.95] * 50)
        assert estimate.rate is not None and estimate.rate < 0.1


class TestEstimateChange:
    """The window's estimate against the reference's through one fit: n = judged calls on each side."""

    def test_parity_with_statsmodels_welch_test(self) -> None:
        calibration = calibrate(*planted(4, 300))
        rng = np.random.default_rng(8)
        reference, window = rng.random(400), rng.random(250) * 0.7
        estimate = estimate_rate(calibration, window)
        change = estimate_change(calibration, reference, window, estimate)
        assert change is not None and estimate.rate is not None and calibration.fit is not None
        predicted_ref, predicted_window = calibration.fit.predict(reference), calibration.fit.predict(window)
        t, p_value, _ = ttest_ind(predicted_window, predicted_ref, usevar="unequal")
        assert change.test == "welch_t"
        assert change.p_value == pytest.approx(p_value, rel=1e-9)
        assert change.reference_rate == pytest.approx(float(predicted_ref.mean()), abs=1e-12)
        assert (change.reference_calls, change.difference) == (
            400,
            pytest.approx(estimate.rate - change.reference_rate),
        )
        assert t < 0 and change.p_value < 0.01  # lower scores: a lower estimate, and a significant one

    def test_constant_sides_are_equal_or_certainly_apart(self) -> None:
        calibration = calibrate(*planted(5, 200))
        same = estimate_change(
            calibration, np.full(12, 0.5), np.full(10, 0.5), estimate_rate(calibration, np.full(10, 0.5))
        )
        apart = estimate_change(
            calibration, np.full(12, 0.9), np.full(10, 0.1), estimate_rate(calibration, np.full(10, 0.1))
        )
        assert same is not None and same.p_value == 1.0
        assert apart is not None and apart.p_value == 0.0 and apart.difference < 0

    def test_none_without_an_estimate_or_a_judged_reference(self) -> None:
        usable = calibrate(*planted(6, 200))
        unusable = calibrate(*planted(6, 10))
        assert estimate_change(usable, [], [0.5, 0.6], estimate_rate(usable, [0.5, 0.6])) is None
        assert estimate_change(usable, [0.5], [0.5, 0.6], estimate_rate(usable, [0.5, 0.6])) is None
        assert estimate_change(unusable, [0.5, 0.6], [0.5, 0.6], estimate_rate(unusable, [0.5, 0.6])) is None
        assert estimate_change(usable, [0.5, 0.6], [], estimate_rate(usable, [])) is None
        few, spread = [1.0] * 3, list(np.linspace(0, 1, 500))  # three calls scored alike: no test, not p ~ 0
        assert estimate_change(usable, spread, few, estimate_rate(usable, few)) is None
        assert estimate_change(usable, spread, [1.0] * 10, estimate_rate(usable, [1.0] * 10)) is not None

    def test_false_alarms_at_alpha_and_more_power_than_a_proportion_test(self) -> None:
        """Both sides' scores from one distribution: Welch's test rejects about as often as alpha says
        (binomial bounds over 2,000 seeded pairs of windows). Every window score 0.1 lower: it finds the
        fall far more often than the two-proportion test of ``round(estimate · n)`` ups would (what the
        module docstring quotes)."""
        calibration = calibrate(*planted(7, 400))
        assert calibration.fit is not None
        rng = np.random.default_rng(9)
        false_alarms = found = found_by_proportions = 0
        for _ in range(2000):
            reference, window = rng.random(300), rng.random(100)
            change = estimate_change(calibration, reference, window, estimate_rate(calibration, window))
            assert change is not None
            false_alarms += change.p_value < 0.05
            lower = np.clip(window - 0.1, 0, 1)
            fall = estimate_change(calibration, reference, lower, estimate_rate(calibration, lower))
            assert fall is not None
            found += fall.p_value < 0.05
            rate, ref_rate = float(calibration.fit.predict(lower).mean()), fall.reference_rate
            _, p_proportions = proportions_ztest([round(rate * 100), round(ref_rate * 300)], [100, 300])
            found_by_proportions += p_proportions < 0.05
        assert 0.035 <= false_alarms / 2000 <= 0.065
        assert found / 2000 > 0.6 and found > 1.5 * found_by_proportions
