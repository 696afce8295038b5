"""Inter-rater agreement of categorical reviews: Cohen's kappa (two raters) and Fleiss' kappa (any number
of raters, the same number of ratings per item). Pure functions: ratings in, kappa out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


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
