"""Cohen's and Fleiss' kappa against the worked examples they are usually taught with; a judge against
people (kappa and Spearman with their intervals) against scikit-learn, statsmodels and scipy on the
same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from detectors.agreement import (
    cohen_kappa,
    cohen_kappa_interval,
    fleiss_kappa,
    judge_vs_thumbs,
    reading,
    spearman_interval,
)


def test_cohen_kappa_of_the_textbook_table() -> None:
    """50 proposals, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o 0.7, p_e 0.5, κ 0.4."""
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(first, first) == pytest.approx(1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement is total: undefined


def test_fleiss_kappa_of_the_worked_example() -> None:
    """Fleiss (1971) as Wikipedia works it: 10 items, 14 raters, 5 categories → κ ≈ 0.210."""
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    items = [[category for category, count in enumerate(row) for _ in range(count)] for row in table]
    assert fleiss_kappa(items) == pytest.approx(0.2099, abs=5e-5)


def test_fleiss_kappa_needs_as_many_ratings_per_item() -> None:
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([["a", "b"], ["a"]])


class TestJudgeAgainstPeople:
    """Kappa with its asymptotic interval and Spearman with its Fisher-z interval match the libraries."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_kappa_and_interval_match_statsmodels_and_sklearn(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        people = rng.choice(["good", "bad", "meh"], size=300, p=[0.5, 0.3, 0.2])
        agree = rng.random(300) < 0.7
        judge = np.where(agree, people, rng.choice(["good", "bad", "meh"], size=300))
        ours = cohen_kappa_interval(list(judge), list(people))
        labels = sorted(set(judge) | set(people))
        table = np.array([[np.sum((judge == a) & (people == b)) for b in labels] for a in labels])
        theirs = cohens_kappa(table)
        assert ours.value == pytest.approx(cohen_kappa_score(judge, people), abs=1e-12)
        assert ours.value == pytest.approx(theirs.kappa, abs=1e-12)
        assert (ours.low, ours.high) == pytest.approx((theirs.kappa_low, theirs.kappa_upp), abs=1e-6)
        assert ours.n == 300
        assert ours.statistic == "cohen_kappa"

    @pytest.mark.parametrize("seed", [4, 5])
    def test_spearman_and_fisher_interval_match_scipy(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        scores = rng.random(120)
        ratings = np.clip(np.round(scores * 4 + 1 + rng.normal(0, 1, 120)), 1, 5)  # ties, as ratings have
        ours = spearman_interval(list(scores), list(ratings))
        assert ours.value == pytest.approx(spearmanr(scores, ratings).statistic, abs=1e-12)
        interval = pearsonr(rankdata(scores), rankdata(ratings)).confidence_interval(0.95)  # Fisher z
        assert (ours.low, ours.high) == pytest.approx((interval.low, interval.high), abs=1e-9)
        assert ours.n == 120

    def test_judge_vs_thumbs_picks_the_statistic_by_the_scores(self) -> None:
        ups = [True, False] * 20
        assert judge_vs_thumbs([1.0, 0.0] * 20, ups).statistic == "cohen_kappa"
        assert judge_vs_thumbs([1.0, 0.0] * 20, ups).value == pytest.approx(1.0)
        graded = judge_vs_thumbs([0.9, 0.2] * 20, ups)
        assert graded.statistic == "spearman"
        assert graded.value == pytest.approx(1.0)

    def test_undefined_and_words(self) -> None:
        assert spearman_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).value is None  # n - 3 = 0: no interval
        assert spearman_interval([0.5] * 10, list(range(10))).value is None  # a constant judge
        assert cohen_kappa_interval(["a"] * 5, ["a"] * 5).low is None
        assert [reading(v) for v in (None, 0.1, 0.5, 0.7, 0.9, -0.1, -0.5)] == [
            "undefined",
            "slight agreement",
            "moderate agreement",
            "substantial agreement",
            "almost perfect agreement",
            "no agreement beyond chance",
            "moderate agreement in reverse",
        ]

    def test_spearman_reads_as_a_correlation(self) -> None:
        """Landis & Koch's bands are for kappa: rho gets Cohen's (1988) sizes of a correlation."""
        values = (None, 0.05, 0.2, 0.4, 0.6, -0.35, -0.05)
        assert [reading(v, "spearman") for v in values] == [
            "undefined",
            "negligible correlation",
            "weak correlation",
            "moderate correlation",
            "strong correlation",
            "moderate negative correlation",
            "negligible correlation",
        ]
        assert reading(0.6, "cohen_kappa") == "moderate agreement"
