"""Per-family drift verdicts: column tests equal scipy's, the rule catches few-column shifts that
evidently's share rule misses, ignores immaterial shifts, and keeps false alarms under its budget."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors import dataset_drift, embedding_drift
from detectors.column_data import categorical_data, numeric_data
from detectors.family_drift import (
    FAMILY_ALPHA,
    chi2_evidence,
    embedding_evidence,
    family_drift,
    ks_evidence,
)


def _llm_window(rng: np.random.Generator, n: int, *, shifted: bool) -> dict[str, np.ndarray]:
    """Four numeric features, one categorical, and 22 descriptor-like columns that never move."""
    shift = 0.5 if shifted else 0.0
    data: dict[str, np.ndarray] = {
        "feature.a": rng.normal(shift, 1, n),
        "feature.b": rng.normal(shift, 1, n),
        "feature.c": rng.normal(shift, 1, n),
        "feature.d": rng.normal(0, 1, n),
        "feature.plan": rng.choice(["free", "pro", "team"], n, p=[0.4, 0.4, 0.2] if shifted else [0.6, 0.3, 0.1]),
    }
    for i in range(22):
        data[f"prompt.d{i}"] = rng.gamma(2.0 + i % 3, 1.0, n)
    return data


FAMILIES = {
    "features": ["feature.a", "feature.b", "feature.c", "feature.d", "feature.plan"],
    "prompt": [f"prompt.d{i}" for i in range(22)],
}


class TestColumnTestsEqualScipy:
    """The per-column evidence is scipy's KS and chi-square, to the last digit."""

    @pytest.mark.parametrize(("n", "m", "shift"), [(50, 80, 0.0), (300, 500, 0.3), (1000, 700, 1.0)])
    def test_ks(self, n: int, m: int, shift: float) -> None:
        rng = np.random.default_rng(n)
        ref, cur = rng.normal(size=n), rng.normal(shift, size=m)
        ours = ks_evidence("x", numeric_data(ref), numeric_data(cur))
        theirs = stats.ks_2samp(ref, cur, method="asymp")
        assert ours.effect == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)

    def test_chi_square_of_the_contingency_table(self) -> None:
        rng = np.random.default_rng(3)
        ref, cur = rng.choice(list("abc"), 300), rng.choice(list("abcd"), 200)
        ours = chi2_evidence("c", categorical_data(ref), categorical_data(cur))
        keys = sorted(set(ref) | set(cur))
        table = np.array([[np.sum(ref == k) for k in keys], [np.sum(cur == k) for k in keys]])
        assert ours.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
        shares = table / table.sum(axis=1, keepdims=True)
        assert ours.effect == pytest.approx(0.5 * np.abs(shares[0] - shares[1]).sum())


class TestVerdicts:
    """A shift of a few features is a features verdict even when evidently's share rule stays silent."""

    def test_few_feature_shift_among_many_descriptors(self) -> None:
        rng = np.random.default_rng(11)
        reference, current = _llm_window(rng, 500, shifted=False), _llm_window(rng, 500, shifted=True)
        evidently = dataset_drift(reference, current)
        assert not evidently.dataset_drifted  # diluted: 4 of 27 columns moved
        verdicts = family_drift(reference, current, FAMILIES)
        features, prompt = verdicts["features"], verdicts["prompt"]
        assert features.drifted
        assert set(features.drifted_columns) >= {"feature.a", "feature.b", "feature.c"}
        assert "feature.d" not in features.drifted_columns
        assert features.strongest_effect >= 0.1
        assert features.share_drifted == pytest.approx(len(features.drifted_columns) / 5)
        assert not prompt.drifted
        assert features.alpha == pytest.approx(FAMILY_ALPHA / 2)  # the budget is shared by the families

    def test_significant_but_immaterial_shift_is_not_drift(self) -> None:
        rng = np.random.default_rng(5)
        reference, current = {"feature.a": rng.normal(0, 1, 200_000)}, {"feature.a": rng.normal(0.05, 1, 200_000)}
        verdict = family_drift(reference, current, {"features": ["feature.a"]})["features"]
        assert verdict.p_value < 1e-10  # significant ...
        assert not verdict.drifted  # ... but a twentieth of a standard deviation is no material shift
        assert verdict.strongest_effect < 0.1

    def test_false_alarms_stay_within_the_budget(self) -> None:
        rng = np.random.default_rng(2026)
        reference = _llm_window(rng, 500, shifted=False)
        alarms = sum(
            any(v.drifted for v in family_drift(reference, _llm_window(rng, 500, shifted=False), FAMILIES).values())
            for _ in range(300)
        )
        assert alarms <= 6  # budget 1 % of 300 windows = 3 expected at most; Poisson tail well below 6


class TestEmbeddingEvidence:
    """The domain classifier of embedding_drift, with the held-out AUC's Mann-Whitney significance."""

    def test_same_auc_as_embedding_drift_and_significant_when_shifted(self) -> None:
        rng = np.random.default_rng(8)
        ref, cur = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
        cur[:, :4] += 0.4
        evidence = embedding_evidence("embedding", ref, cur)
        auc = embedding_drift(ref, cur).value
        assert evidence.effect == pytest.approx(2 * auc - 1)
        assert evidence.p_value < 1e-6

    def test_stationary_embeddings_have_uniform_p_values(self) -> None:
        rng = np.random.default_rng(9)
        p_values = [
            embedding_evidence("e", rng.normal(size=(200, 8)), rng.normal(size=(200, 8))).p_value for _ in range(200)
        ]
        assert 0.02 <= float(np.mean(np.asarray(p_values) < 0.1)) <= 0.2
