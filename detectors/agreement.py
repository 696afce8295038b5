"""Inter-rater agreement: Cohen's kappa (two raters) and Fleiss' kappa (any number of raters, the same
number of ratings per item) of categorical reviews, and a judge against people (Cohen's kappa or
Spearman's rho, with n and a 95 % confidence interval). Pure functions: ratings in, agreement out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items (in the same order); None if undefined
    (no items, or chance agreement is total)."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    left, right = Counter(first), Counter(second)
    expected = sum(left[label] * right[label] for label in left) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa of items each rated by the same number (≥ 2) of raters; ``items`` holds each item's
    labels. None if undefined (no items, or every rating has the same label)."""
    if not items:
        return None
    raters = len(items[0])
    if raters < 2 or any(len(labels) != raters for labels in items):
        raise ValueError("every item needs the same number (at least 2) of ratings")
    total = Counter(label for labels in items for label in labels)
    ratings = len(items) * raters
    per_item = [
        (sum(count * count for count in Counter(labels).values()) - raters) / (raters * (raters - 1))
        for labels in items
    ]
    observed = sum(per_item) / len(items)
    expected = sum((count / ratings) ** 2 for count in total.values())
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


# --- a judge against people: the agreement, with its n and confidence interval --------------------------

Statistic = Literal["cohen_kappa", "spearman"]
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far one rater (a judge) agrees with another (people) on ``n`` items: the statistic's value
    and its 95 % confidence interval (all None when undefined: too few items, or one side constant)."""

    statistic: Statistic
    value: float | None
    low: float | None
    high: float | None
    n: int
    interval: str


KAPPA_INTERVAL = "asymptotic normal, Fleiss-Cohen-Everitt (1969) standard error"
SPEARMAN_INTERVAL = "Fisher z: atanh(rho) ± 1.96 / sqrt(n - 3)"


def cohen_kappa_interval(first: Sequence[Hashable], second: Sequence[Hashable]) -> Agreement:
    """Cohen's kappa of two raters with its asymptotic 95 % interval (the large-sample standard error of
    Fleiss, Cohen and Everitt 1969, the one statsmodels' ``cohens_kappa`` reports), clipped to [-1, 1]."""
    kappa = cohen_kappa(first, second)
    n = len(first)
    if kappa is None:
        return Agreement("cohen_kappa", None, None, None, n, KAPPA_INTERVAL)
    labels = sorted(set(first) | set(second), key=repr)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for a, b in zip(first, second, strict=True):
        table[index[a], index[b]] += 1
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    expected = float((rows * cols).sum())
    diagonal = np.diag(p) * (1 - (rows + cols) * (1 - kappa)) ** 2
    off = p * (cols[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0.0)
    variance = (diagonal.sum() + (1 - kappa) ** 2 * off.sum() - (kappa - expected * (1 - kappa)) ** 2) / (
        (1 - expected) ** 2 * n
    )
    half = Z95 * math.sqrt(max(float(variance), 0.0))
    return Agreement("cohen_kappa", kappa, max(-1.0, kappa - half), min(1.0, kappa + half), n, KAPPA_INTERVAL)


def spearman_interval(first: Sequence[float], second: Sequence[float]) -> Agreement:
    """Spearman's rank correlation (ties take their average rank) with the Fisher-z 95 % interval;
    undefined below 4 items (the interval needs n - 3 > 0) or when either side is constant."""
    n = len(first)
    if len(second) != n:
        raise ValueError("both raters must rate the same items")
    if n < 4:
        return Agreement("spearman", None, None, None, n, SPEARMAN_INTERVAL)
    x, y = rankdata(np.asarray(first, dtype=float)), rankdata(np.asarray(second, dtype=float))
    x, y = x - x.mean(), y - y.mean()
    scale = math.sqrt(float((x * x).sum() * (y * y).sum()))
    if scale == 0:
        return Agreement("spearman", None, None, None, n, SPEARMAN_INTERVAL)
    rho = min(1.0, max(-1.0, float((x * y).sum()) / scale))
    if abs(rho) == 1:
        return Agreement("spearman", rho, rho, rho, n, SPEARMAN_INTERVAL)
    z, half = math.atanh(rho), Z95 / math.sqrt(n - 3)
    return Agreement("spearman", rho, math.tanh(z - half), math.tanh(z + half), n, SPEARMAN_INTERVAL)


def judge_vs_thumbs(scores: Sequence[float], ups: Sequence[bool]) -> Agreement:
    """A judge's scores against people's thumbs (up = True) on the same calls: Cohen's kappa when every
    score is 0 or 1 (boolean judges, code checks: 1 against thumbs-up), else Spearman."""
    if all(score in (0.0, 1.0) for score in scores):
        return cohen_kappa_interval([score == 1.0 for score in scores], list(ups))
    return spearman_interval(scores, [float(up) for up in ups])


# Landis & Koch (1977): the words teams use for kappa (a chance-corrected agreement).
_READINGS = ((0.8, "almost perfect"), (0.6, "substantial"), (0.4, "moderate"), (0.2, "fair"), (0.0, "slight"))
# Spearman's rho is a correlation, not an agreement: Cohen's (1988) conventions for the size of a
# correlation coefficient (|r| 0.1 small, 0.3 medium, 0.5 large), said as weak / moderate / strong.
_CORRELATIONS = ((0.5, "strong"), (0.3, "moderate"), (0.1, "weak"), (0.0, "negligible"))


def reading(value: float | None, statistic: Statistic = "cohen_kappa") -> str:
    """Plain words for an agreement value: Landis & Koch's bands for kappa (a negative value agrees in
    reverse), Cohen's sizes of a correlation for Spearman's rho (negative: a negative correlation)."""
    if value is None:
        return "undefined"
    if statistic == "spearman":
        size = next(words for floor, words in _CORRELATIONS if abs(value) >= floor)
        if size == "negligible":
            return "negligible correlation"
        return f"{size} {'negative ' if value < 0 else ''}correlation"
    if value < 0:
        return f"{_band(-value)} agreement in reverse" if value <= -0.2 else "no agreement beyond chance"
    return f"{_band(value)} agreement"


def _band(value: float) -> str:
    return next(words for floor, words in _READINGS if value > floor or floor == 0.0)
