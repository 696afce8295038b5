"""One drift verdict per *family* of columns (features, prompt descriptors, response descriptors).

Why not evidently's dataset rule: "drifted columns / all columns >= 0.5" dilutes a shift in the three
features an operator cares about among two dozen text descriptors that did not move (a realistic LLM
shift gives a share near 0.3, never flagged), and its column verdicts switch from p-values (n <= 1000)
to distances (n > 1000), so the same rule has a different false-alarm rate at every traffic level.

The rule here, per family of ``m`` columns, given a per-window false-alarm budget ``alpha`` shared by
the families (``alpha / families`` each, Bonferroni across families):

1. every column gets one p-value from a test whose null distribution does not depend on the sample
   size: two-sample Kolmogorov-Smirnov for numeric columns (statistic ``D``, the effect), chi-square
   of the 2 x k contingency table for categorical ones (effect: total variation distance, half the L1
   distance between the two category shares);
2. the family's p-value is the Bonferroni min-p (Tippett): ``min(1, m * min_i p_i)``. Min-p is the
   most powerful combination when a shift touches a few columns (sparse alternatives, the common
   case), and Bonferroni stays valid under any dependence; text descriptors are strongly
   correlated (length, word count, sentences), which invalidates Fisher's combination;
3. a column *drifts* when ``m * p_i < alpha_family`` and its effect is at least ``min_effect``
   (0.1: a KS distance of 0.1 is a shift of about a quarter standard deviation; 10 % of the traffic
   changing category). The effect gate keeps huge windows from alerting on immaterial shifts
   that are merely significant;
4. the family drifts when at least one column drifts.

False alarms: under no shift each family alerts with probability at most ``alpha_family`` (KS and
chi-square are conservative with ties and small counts), so a window alerts with probability at
most ``alpha``. The default ``alpha = 0.008`` plus the default quality monitor's 0.002 keeps the
default monitors at no more than one false alarm per 100 stationary windows per model.

Column values are not touched: evidently's per-column values stay in ``column_drift`` rows; this
module only decides the family verdicts.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2, kstwo, mannwhitneyu

from detectors.column_data import CategoricalData, NumericData
from detectors.embedding_drift import diagonal_discriminant, roc_auc, split_indices
from detectors.kinds import ColumnKind, is_drift_kind
from detectors.preparation import ColumnInput, ReferenceSummary, prepare, resolve_kind
from detectors.profile import ReferenceProfile

FAMILY_ALPHA: float = 0.008
"""False-alarm budget of the drift families per window and model, shared by all of them. With the
default quality monitor's 0.002 it makes the 1 % per-window budget of the default monitors."""
MIN_EFFECT: float = 0.1
"""Smallest material effect (KS distance, or total variation distance of category shares)."""


@dataclass(frozen=True, slots=True)
class ColumnEvidence:
    """One column's test for the family verdict: its p-value and its effect size."""

    column: str
    test: str
    effect: float
    p_value: float
    n_reference: int
    n_current: int
    reference_mean: float | None = None  # numeric columns: what moved, in the column's own unit
    current_mean: float | None = None


@dataclass(frozen=True, slots=True)
class FamilyVerdict:
    """The verdict of one family: drifted columns, their share, the strongest effect."""

    family: str
    n_columns: int
    drifted_columns: tuple[str, ...]
    p_value: float
    alpha: float
    min_effect: float
    strongest_column: str | None
    strongest_effect: float
    drifted: bool
    columns: tuple[ColumnEvidence, ...] = ()  # every tested column's evidence

    def adjusted_p_value(self, evidence: ColumnEvidence) -> float:
        """A column's p-value as the rule compares it with ``alpha`` (Bonferroni over the family)."""
        return min(1.0, self.n_columns * evidence.p_value)

    @property
    def share_drifted(self) -> float:
        """Drifted columns / tested columns (0 when nothing was tested)."""
        return len(self.drifted_columns) / self.n_columns if self.n_columns else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {**asdict(self), "drifted_columns": list(self.drifted_columns), "share_drifted": self.share_drifted}


def ks_evidence(column: str, reference: NumericData, current: NumericData) -> ColumnEvidence:
    """Two-sample KS (two-sided, asymptotic-exact ``kstwo`` on the effective size, as scipy's ``ks_2samp``
    with ``method='asymp'``) between the held values of both sides."""
    ref, cur = reference.sorted_values, current.sorted_values
    n, m = int(ref.size), int(cur.size)
    if n == 0 or m == 0:
        return ColumnEvidence(column, "ks", float("nan"), 1.0, n, m)
    both = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, both, side="right") / n
    cdf_cur = np.searchsorted(cur, both, side="right") / m
    d = float(np.max(np.abs(cdf_ref - cdf_cur)))
    effective = round(n * m / (n + m))
    p_value = float(np.clip(kstwo.sf(d, effective), 0.0, 1.0))
    return ColumnEvidence(column, "ks", d, p_value, n, m, float(ref.mean()), float(cur.mean()))


def chi2_evidence(column: str, reference: CategoricalData, current: CategoricalData) -> ColumnEvidence:
    """Chi-square test of homogeneity of the 2 x k table (scipy's ``chi2_contingency`` without
    continuity correction); effect = total variation distance between the category shares."""
    keys = list(dict.fromkeys([*reference.keys, *current.keys]))
    ref_map, cur_map = reference.as_dict(), current.as_dict()
    table = np.array([[ref_map.get(k, 0) for k in keys], [cur_map.get(k, 0) for k in keys]], dtype=np.float64)
    n, m = int(table[0].sum()), int(table[1].sum())
    if n == 0 or m == 0:
        return ColumnEvidence(column, "chisquare", float("nan"), 1.0, n, m)
    effect = float(0.5 * np.abs(table[0] / n - table[1] / m).sum())
    if len(keys) < 2:
        return ColumnEvidence(column, "chisquare", effect, 1.0, n, m)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    p_value = float(chi2.sf(statistic, len(keys) - 1))
    return ColumnEvidence(column, "chisquare", effect, p_value, n, m)


def embedding_evidence(column: str, reference: np.ndarray, current: np.ndarray) -> ColumnEvidence:
    """The domain classifier of :mod:`detectors.embedding_drift` (same split, same linear model), with a
    p-value: the held-out AUC *is* the Mann-Whitney U of the reference rows' scores against the current
    rows' scores divided by their product, so its one-sided U test is the exact significance of "the
    classifier tells the windows apart" (the test half never trained the model). Effect = ``2 * AUC - 1``
    (Gini; evidently's AUC threshold 0.55 is an effect of 0.1)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = ref[np.isfinite(ref).all(axis=1)]
    cur = cur[np.isfinite(cur).all(axis=1)]
    n, m = int(ref.shape[0]), int(cur.shape[0])
    if min(n, m) < 4 or ref.shape[1] != cur.shape[1]:
        return ColumnEvidence(column, "domain_classifier", float("nan"), 1.0, n, m)
    data = np.vstack((ref, cur))
    labels = np.concatenate((np.ones(n, dtype=np.int64), np.zeros(m, dtype=np.int64)))
    train, test = split_indices(labels.size)
    if labels[train].min() == labels[train].max() or labels[test].min() == labels[test].max():
        return ColumnEvidence(column, "domain_classifier", float("nan"), 1.0, n, m)
    scores = data[test] @ diagonal_discriminant(data[train], labels[train])
    held = labels[test]
    auc = roc_auc(held, scores)
    p_value = float(
        mannwhitneyu(scores[held == 1], scores[held == 0], alternative="greater", method="asymptotic").pvalue
    )
    return ColumnEvidence(column, "domain_classifier", 2.0 * auc - 1.0, p_value, n, m)


def column_evidence(
    name: str, reference: ColumnInput, current: ColumnInput, column_type: ColumnKind | None = None
) -> ColumnEvidence | None:
    """The evidence of one column, or ``None`` for columns that are not numeric or categorical."""
    kind = resolve_kind(reference, current, column_type)
    if not is_drift_kind(kind):
        return None
    ref = prepare(reference, kind)
    cur = prepare(current, kind)
    if isinstance(reference, ReferenceSummary):
        cur = reference.align_current(cur)
    if isinstance(ref, NumericData) and isinstance(cur, NumericData):
        return ks_evidence(name, ref, cur)
    if isinstance(ref, CategoricalData) and isinstance(cur, CategoricalData):
        return chi2_evidence(name, ref, cur)
    raise TypeError(f"column {name!r}: both sides must be prepared as the same kind {kind!r}")


def family_verdict(
    family: str, evidence: Sequence[ColumnEvidence], *, alpha: float, min_effect: float = MIN_EFFECT
) -> FamilyVerdict:
    """Combine one family's column evidence (rule in the module docstring); ``alpha`` is this family's share."""
    tested = [e for e in evidence if np.isfinite(e.effect)]
    m = len(tested)
    if not m:
        return FamilyVerdict(family, 0, (), 1.0, alpha, min_effect, None, 0.0, drifted=False)
    adjusted = [min(1.0, m * e.p_value) for e in tested]
    drifted = tuple(e.column for e, p in zip(tested, adjusted, strict=True) if p < alpha and e.effect >= min_effect)
    strongest = max(tested, key=lambda e: (e.effect, -e.p_value))
    return FamilyVerdict(
        family=family,
        n_columns=m,
        drifted_columns=drifted,
        p_value=min(adjusted),
        alpha=alpha,
        min_effect=min_effect,
        strongest_column=strongest.column,
        strongest_effect=strongest.effect,
        drifted=bool(drifted),
        columns=tuple(tested),
    )


def family_drift(
    reference: Mapping[str, ColumnInput] | ReferenceProfile,
    current: Mapping[str, ColumnInput],
    families: Mapping[str, Sequence[str]],
    *,
    alpha: float = FAMILY_ALPHA,
    min_effect: float = MIN_EFFECT,
    column_types: Mapping[str, ColumnKind] | None = None,
    extra_families: int = 0,
) -> dict[str, FamilyVerdict]:
    """Verdicts of every family that has a column on both sides; ``alpha`` is split evenly between
    them (and ``extra_families`` more tested elsewhere, e.g. embeddings)."""
    ref_columns = reference.columns if isinstance(reference, ReferenceProfile) else reference
    types = column_types or {}
    evidence: dict[str, list[ColumnEvidence]] = {}
    for family, names in families.items():
        found = []
        for name in names:
            if name in ref_columns and name in current:
                item = column_evidence(name, ref_columns[name], current[name], types.get(name))
                if item is not None:
                    found.append(item)
        if found:
            evidence[family] = found
    share = alpha / max(1, len(evidence) + extra_families)
    return {
        family: family_verdict(family, items, alpha=share, min_effect=min_effect) for family, items in evidence.items()
    }


__all__ = [
    "FAMILY_ALPHA",
    "MIN_EFFECT",
    "ColumnEvidence",
    "FamilyVerdict",
    "chi2_evidence",
    "column_evidence",
    "embedding_evidence",
    "family_drift",
    "family_verdict",
    "ks_evidence",
]
