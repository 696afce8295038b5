"""column_drift / dataset_drift behaviour: selection, missing data, corrections, skipped columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors import adjust_p_values, column_drift, dataset_drift


class TestColumnDrift:
    """Single-column API: defaults, explicit choices and edge cases."""

    def test_default_selection_small_and_large(self) -> None:
        rng = np.random.default_rng(1)
        assert column_drift(rng.normal(size=1000), rng.normal(size=500)).method == "ks"
        assert column_drift(rng.normal(size=1001), rng.normal(size=500)).method == "wasserstein"
        assert column_drift(rng.choice(["a", "b", "c"], 300), rng.choice(["a", "b"], 300)).method == "chisquare"
        assert column_drift(rng.choice(["a", "b"], 300), rng.choice(["a", "b"], 300)).method == "z"
        assert column_drift(rng.choice(["a", "b"], 3000), rng.choice(["a", "b"], 300)).method == "jensenshannon"
        # numeric with few values: per-value tests
        few = rng.integers(0, 3, 400).astype(float)
        assert column_drift(few, few[:100]).method == "chisquare"
        assert column_drift(np.repeat([0.0, 1.0], 200), np.repeat([0.0, 1.0], 50)).method == "z"
        assert column_drift(np.repeat([0.0, 1.0], 2000), np.repeat([0.0, 1.0], 50)).method == "jensenshannon"

    def test_result_fields(self) -> None:
        rng = np.random.default_rng(2)
        result = column_drift(rng.normal(size=400), rng.normal(1.0, size=300), column="latency")
        assert result.column == "latency"
        assert result.column_type == "num"
        assert result.p_value == result.value
        assert result.drifted
        assert (result.n_reference, result.n_current) == (400, 300)
        assert json.loads(json.dumps(result.to_dict()))["method"] == "ks"
        distance = column_drift(rng.normal(size=4000), rng.normal(size=300))
        assert distance.p_value is None
        assert distance.threshold == 0.1

    def test_explicit_threshold_applies_to_default_test(self) -> None:
        rng = np.random.default_rng(3)
        ref, cur = rng.normal(size=2000), rng.normal(0.05, size=2000)
        loose = column_drift(ref, cur, threshold=0.5)
        strict = column_drift(ref, cur, threshold=0.01)
        assert loose.method == strict.method == "wasserstein"
        assert not loose.drifted
        assert strict.drifted

    @pytest.mark.parametrize("current", [[], [None, None], [np.nan, np.inf, -np.inf]])
    def test_empty_current_is_insufficient_data(self, current: list[object]) -> None:
        result = column_drift([1.0, 2.0, 3.0], current, column_type="num")
        assert result.status == "insufficient_data"
        assert not result.drifted
        assert np.isnan(result.value)
        assert result.n_current == 0

    def test_empty_reference_is_insufficient_data(self) -> None:
        result = column_drift([None, None], ["a", "b"], column_type="cat")
        assert result.status == "insufficient_data"
        assert result.n_reference == 0

    def test_missing_values_are_dropped(self) -> None:
        rng = np.random.default_rng(4)
        ref, cur = rng.normal(size=300), rng.normal(size=200)
        dirty_cur = [*list(cur), None, float("nan"), float("inf")]
        assert column_drift(ref, dirty_cur).value == column_drift(ref, cur).value
        cats = ["a", "b", None, "a", float("nan")]
        assert column_drift(["a", "b", "a"], cats, column_type="cat").n_current == 3

    def test_constant_columns(self) -> None:
        same = column_drift(np.full(50, 1.0), np.full(40, 1.0))
        assert same.method == "z"
        assert same.value == 1.0
        assert not same.drifted
        moved = column_drift(np.full(5000, 1.0), np.linspace(0, 2, 3000), column_type="num")
        assert moved.method == "wasserstein"
        assert moved.drifted

    def test_text_column_needs_explicit_type(self) -> None:
        texts = [f"answer number {i}" for i in range(50)]
        with pytest.raises(ValueError, match="text"):
            column_drift(texts, texts)
        assert column_drift(texts, texts, column_type="cat").method == "chisquare"

    def test_numeric_method_on_strings_rejected(self) -> None:
        with pytest.raises(ValueError, match="numerical"):
            column_drift(["a", "b"], ["a", "b"], column_type="num")


class TestDatasetDrift:
    """Dataset verdict, skipped columns, per-column settings and multiple-testing correction."""

    def test_share_and_verdict(self) -> None:
        rng = np.random.default_rng(5)
        ref = {f"c{i}": rng.normal(size=500) for i in range(4)}
        cur = {f"c{i}": rng.normal(1.0 if i < 2 else 0.0, size=400) for i in range(4)}
        result = dataset_drift(ref, cur)
        assert result.n_columns == 4
        assert result.n_drifted == 2
        assert result.share_drifted == 0.5
        assert result.dataset_drifted  # evidently: share >= drift_share
        assert not dataset_drift(ref, cur, drift_share=0.75).dataset_drifted
        assert result.drifted_columns == ["c0", "c1"]

    def test_skipped_columns(self) -> None:
        rng = np.random.default_rng(6)
        ref = {
            "x": rng.normal(size=100),
            "only_ref": rng.normal(size=100),
            "text": [f"t{i}" for i in range(100)],
        }
        cur = {
            "x": rng.normal(size=100),
            "only_cur": rng.normal(size=100),
            "text": [f"u{i}" for i in range(100)],
        }
        result = dataset_drift(ref, cur)
        assert list(result.columns) == ["x"]
        assert set(result.skipped) == {"only_ref", "only_cur", "text"}
        assert "text" in result.skipped["text"]

    def test_no_testable_columns(self) -> None:
        result = dataset_drift({"a": [1.0]}, {"b": [1.0]})
        assert result.n_columns == 0
        assert np.isnan(result.share_drifted)
        assert not result.dataset_drifted

    def test_insufficient_columns_excluded_from_share(self) -> None:
        rng = np.random.default_rng(7)
        ref = {"x": rng.normal(size=200), "y": rng.normal(size=200)}
        cur = {"x": rng.normal(2.0, size=200), "y": [np.nan] * 200}
        result = dataset_drift(ref, cur)
        assert result.columns["y"].status == "insufficient_data"
        assert result.n_columns == 1
        assert result.share_drifted == 1.0

    def test_per_column_method_threshold_and_types(self) -> None:
        rng = np.random.default_rng(8)
        ref = pd.DataFrame({"a": rng.normal(size=300), "b": rng.integers(0, 3, 300)})
        cur = pd.DataFrame({"a": rng.normal(size=300), "b": rng.integers(0, 3, 300)})
        result = dataset_drift(ref, cur, method={"a": "psi"}, threshold={"a": 0.3}, column_types={"b": "num"})
        assert result.columns["a"].method == "psi"
        assert result.columns["a"].threshold == 0.3
        assert result.columns["b"].column_type == "num"
        assert result.columns["b"].method == "chisquare"

    @pytest.mark.parametrize("correction", ["bonferroni", "holm", "fdr_bh"])
    def test_correction_matches_statsmodels(self, correction: str) -> None:
        multitest = pytest.importorskip("statsmodels.stats.multitest")
        rng = np.random.default_rng(9)
        ref = {f"c{i}": rng.normal(size=300) for i in range(12)}
        cur = {f"c{i}": rng.normal(0.25 * (i % 3), size=300) for i in range(12)}
        ref["dist"], cur["dist"] = rng.normal(size=3000), rng.normal(size=3000)  # wasserstein: not corrected
        result = dataset_drift(ref, cur, correction=correction)
        names = [f"c{i}" for i in range(12)]
        raw = np.array([result.columns[n].p_value for n in names])
        reject, adjusted, _, _ = multitest.multipletests(raw, alpha=0.05, method=correction)
        np.testing.assert_allclose([result.columns[n].adjusted_p_value for n in names], adjusted, rtol=1e-12)
        assert [result.columns[n].drifted for n in names] == list(reject)
        assert result.columns["dist"].adjusted_p_value is None
        assert result.correction == correction

    def test_adjust_p_values_none_and_empty(self) -> None:
        p = np.array([0.01, 0.2])
        np.testing.assert_array_equal(adjust_p_values(p, "none"), p)
        assert adjust_p_values(np.array([]), "holm").size == 0
        with pytest.raises(ValueError, match="unknown correction"):
            adjust_p_values(p, "sidak")  # type: ignore[arg-type]

    def test_to_dict_is_json(self) -> None:
        rng = np.random.default_rng(10)
        result = dataset_drift({"x": rng.normal(size=50)}, {"x": rng.normal(size=50)})
        assert json.loads(json.dumps(result.to_dict()))["n_columns"] == 1
