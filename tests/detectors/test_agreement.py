"""Cohen's and Fleiss' kappa against the worked examples they are usually taught with (neither
scikit-learn nor statsmodels is installed here to compare with)."""

from __future__ import annotations

import pytest

from detectors.agreement import cohen_kappa, fleiss_kappa


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
