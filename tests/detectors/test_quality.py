"""Proportion, rank and classification statistics against statsmodels / scipy / sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors import accuracy_change, classification_quality, proportion_change, ratings_change, score_change


class TestProportionChange:
    """Two-proportion z-test by hand and vs statsmodels; Fisher exact for small expected cells."""

    def test_z_test_matches_statsmodels_and_hand_formula(self) -> None:
        proportion = pytest.importorskip("statsmodels.stats.proportion")
        result = proportion_change(120, 400, 165, 420)
        z_sm, p_sm = proportion.proportions_ztest([165, 120], [420, 400])
        pooled = (120 + 165) / (400 + 420)
        z_hand = (165 / 420 - 120 / 400) / math.sqrt(pooled * (1 - pooled) * (1 / 400 + 1 / 420))
        assert result.test == "two_proportion_z"
        assert result.statistic == pytest.approx(z_hand, rel=1e-12) == pytest.approx(z_sm, rel=1e-12)
        assert result.p_value == pytest.approx(p_sm, rel=1e-9)
        assert result.difference == pytest.approx(165 / 420 - 120 / 400)
        assert result.cohens_h == pytest.approx(2 * math.asin(math.sqrt(165 / 420)) - 2 * math.asin(math.sqrt(0.3)))

    def test_fisher_when_expected_cell_below_five(self) -> None:
        result = proportion_change(1, 40, 6, 35)  # 7 successes: expected cells 3.7 and 3.3
        expected = stats.fisher_exact([[1, 39], [6, 29]])
        assert result.test == "fisher_exact"
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
        assert result.statistic == pytest.approx(expected.statistic)

    def test_degenerate_rates(self) -> None:
        assert proportion_change(0, 100, 0, 100).p_value == pytest.approx(1.0)
        assert proportion_change(50, 50, 50, 50).p_value == pytest.approx(1.0)
        empty = proportion_change(0, 0, 3, 10)
        assert empty.status == "insufficient_data"
        assert math.isnan(empty.p_value)
        with pytest.raises(ValueError, match="invalid counts"):
            proportion_change(5, 3, 1, 2)

    def test_accuracy_change_uses_correct_counts(self) -> None:
        ref = classification_quality([0, 1, 1, 0] * 50, [0, 1, 0, 0] * 50)
        cur = classification_quality([0, 1, 1, 0] * 50, [1, 1, 0, 0] * 50)
        change = accuracy_change(ref.n_correct, ref.n, cur.n_correct, cur.n)
        assert change.rate_ref == ref.accuracy
        assert change.rate_cur == cur.accuracy
        assert change.p_value == proportion_change(ref.n_correct, ref.n, cur.n_correct, cur.n).p_value


class TestRankChange:
    """Mann-Whitney U equals scipy; rank-biserial equals the common-language definition."""

    @pytest.mark.parametrize("seed", [0, 1])
    def test_ratings_match_scipy(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ref = rng.choice([1, 2, 3, 4, 5], 300, p=[0.1, 0.1, 0.2, 0.3, 0.3])
        cur = rng.choice([1, 2, 3, 4, 5], 250, p=[0.2, 0.15, 0.2, 0.25, 0.2])
        result = ratings_change(ref, cur)
        expected = stats.mannwhitneyu(cur, ref, alternative="two-sided")
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
        assert result.u_statistic == expected.statistic
        greater = (cur[:, None] > ref[None, :]).mean()
        less = (cur[:, None] < ref[None, :]).mean()
        assert result.rank_biserial == pytest.approx(greater - less, abs=1e-12)
        assert result.rank_biserial < 0  # current ratings are worse

    def test_scores_small_exact_and_missing(self) -> None:
        ref = [0.1, 0.4, 0.35, 0.8, None]
        cur = [0.9, 0.85, float("nan"), 0.95, 0.7]
        result = score_change(ref, cur)
        expected = stats.mannwhitneyu([0.9, 0.85, 0.95, 0.7], [0.1, 0.4, 0.35, 0.8], alternative="two-sided")
        assert (result.n_ref, result.n_cur) == (4, 4)
        assert result.p_value == pytest.approx(expected.pvalue)
        assert result.rank_biserial == pytest.approx(0.875)
        assert score_change([], [1.0]).status == "insufficient_data"


class TestClassificationQuality:
    """Accuracy and macro-F1 equal sklearn's."""

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_sklearn(self, seed: int) -> None:
        metrics = pytest.importorskip("sklearn.metrics")
        rng = np.random.default_rng(seed)
        labels = ["cat", "dog", "bird", "fish"]
        y_true = rng.choice(labels[:3], 400)  # "fish" only ever predicted
        y_pred = np.where(rng.random(400) < 0.7, y_true, rng.choice(labels, 400))
        result = classification_quality(y_true, y_pred)
        assert result.accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred))
        f1 = metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)
        assert result.macro_f1 == pytest.approx(f1, rel=1e-12)
        assert result.n_classes == len(set(y_true) | set(y_pred))

    def test_missing_pairs_dropped_and_empty(self) -> None:
        result = classification_quality([1, 0, None, 1], [1, 1, 0, None])
        assert result.n == 2
        assert result.n_correct == 1
        assert classification_quality([], []).status == "insufficient_data"
        with pytest.raises(ValueError, match="labels"):
            classification_quality([1, 2], [1])
