"""Embedding drift: evidently's protocol pieces reproduced exactly, ratio/distance equal evidently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors import embedding_drift
from detectors.embedding_drift import random_auc_threshold, roc_auc, split_indices


def _embeddings(n_ref: int, n_cur: int, shift: float, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n_ref, d))
    cur = rng.normal(size=(n_cur, d))
    cur[:, : d // 2] += shift
    return ref, cur


class TestModelMethodProtocol:
    """Split, AUC and bootstrap threshold are the ones evidently's model() method uses."""

    def test_split_equals_sklearn(self) -> None:
        model_selection = pytest.importorskip("sklearn.model_selection")
        for n in (7, 100, 1001):
            train, test = split_indices(n)
            sk_train, sk_test = model_selection.train_test_split(
                np.arange(n), test_size=0.5, random_state=42, shuffle=True
            )
            np.testing.assert_array_equal(train, sk_train)
            np.testing.assert_array_equal(test, sk_test)

    def test_auc_equals_sklearn(self) -> None:
        metrics = pytest.importorskip("sklearn.metrics")
        rng = np.random.default_rng(1)
        labels = rng.integers(0, 2, 500)
        scores = np.round(rng.normal(labels * 0.5, 1.0), 1)  # many ties
        assert roc_auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores), rel=1e-12)

    def test_bootstrap_threshold_equals_evidently(self) -> None:
        methods = pytest.importorskip("evidently.legacy.metrics.data_drift.embedding_drift_methods")
        labels = pd.Series(np.random.default_rng(2).integers(0, 2, 300))
        expected = np.percentile([methods.calc_roc_auc_random(labels, i) for i in range(100)], 95)
        assert random_auc_threshold(labels.to_numpy()) == pytest.approx(expected, rel=1e-12)

    @pytest.mark.parametrize(("shift", "n_ref"), [(0.0, 600), (0.5, 600), (0.0, 1500), (0.3, 1500)])
    def test_flags_agree_with_evidently_model(self, shift: float, n_ref: int) -> None:
        methods = pytest.importorskip("evidently.legacy.metrics.data_drift.embedding_drift_methods")
        ref, cur = _embeddings(n_ref, 500, shift, seed=3)
        ours = embedding_drift(ref, cur)
        their_score, their_drift, _ = methods.model(bootstrap=n_ref < 1000)(pd.DataFrame(cur), pd.DataFrame(ref))
        assert ours.method == "model"
        assert ours.drifted == their_drift
        if shift == 0.0:  # both classifiers are at chance level
            assert abs(ours.value - 0.5) < 0.1
            assert abs(their_score - 0.5) < 0.1
        else:  # different classifiers: ours (closed form) separates at least as well as a few SGD epochs
            assert ours.value >= their_score - 0.02

    def test_deterministic(self) -> None:
        ref, cur = _embeddings(400, 300, 0.2, seed=4)
        assert embedding_drift(ref, cur) == embedding_drift(ref, cur)


class TestRatioAndDistance:
    """Ratio and distance methods equal evidently's RatioDriftMethod / DistanceDriftMethod."""

    @pytest.mark.parametrize("shift", [0.0, 0.15, 1.0])
    def test_ratio_equals_evidently(self, shift: float) -> None:
        methods = pytest.importorskip("evidently.legacy.metrics.data_drift.embedding_drift_methods")
        ref, cur = _embeddings(800, 700, shift, seed=5)
        ours = embedding_drift(ref, cur, method="ratio")
        score, drifted, _ = methods.ratio()(pd.DataFrame(cur), pd.DataFrame(ref))
        assert ours.value == pytest.approx(score, abs=1e-12)
        assert ours.drifted == drifted

    @pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
    def test_distance_equals_evidently(self, shift: float) -> None:
        methods = pytest.importorskip("evidently.legacy.metrics.data_drift.embedding_drift_methods")
        ref, cur = _embeddings(500, 400, shift, seed=6)
        ours = embedding_drift(ref, cur, method="distance")
        score, drifted, _ = methods.distance()(pd.DataFrame(cur), pd.DataFrame(ref))
        assert ours.value == pytest.approx(score, rel=1e-12)
        assert ours.drifted == drifted


class TestEdgeCases:
    """Shapes, missing rows and tiny inputs."""

    def test_nan_rows_dropped_and_dimension_mismatch(self) -> None:
        ref, cur = _embeddings(200, 200, 0.0, seed=7)
        ref[::10, 3] = np.nan
        assert embedding_drift(ref, cur, method="distance").n_reference == 180
        with pytest.raises(ValueError, match="dimension"):
            embedding_drift(ref, cur[:, :5])

    def test_insufficient_rows(self) -> None:
        result = embedding_drift(np.ones((1, 4)), np.ones((5, 4)))
        assert result.status == "insufficient_data"
        assert not result.drifted

    def test_explicit_threshold(self) -> None:
        ref, cur = _embeddings(300, 300, 0.0, seed=8)
        result = embedding_drift(ref, cur, threshold=0.0)
        assert result.threshold == 0.0
        assert result.drifted == (result.value > 0.0)
