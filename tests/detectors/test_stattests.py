"""Each drift statistic against scipy / numpy / statsmodels / evidently internals on fixed data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from detectors import column_drift, get_stat_test, register_stat_test
from detectors.column_data import CategoricalData, categorical_data, numeric_data
from detectors.stattests import StatTestSpec, available_stat_tests, default_stat_test
from detectors.stattests.binning import binned_shares, histogram_counts, sturges_edges, union_keys
from detectors.stattests.chisquare import chisquare_p_value
from detectors.stattests.jensenshannon import jensenshannon_value
from detectors.stattests.ks import ks_p_value
from detectors.stattests.psi import psi_value
from detectors.stattests.wasserstein import wasserstein_normed, wasserstein_sorted
from detectors.stattests.z_test import z_p_value

RNG_SEED = 20240601


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


class TestKolmogorovSmirnov:
    """KS p-value equals scipy.stats.ks_2samp."""

    @pytest.mark.parametrize(("n", "m"), [(50, 70), (400, 400), (1000, 3000), (20000, 15000)])
    def test_matches_scipy(self, n: int, m: int) -> None:
        rng = _rng()
        ref, cur = rng.normal(size=n), rng.normal(0.1, 1.2, size=m)
        expected = stats.ks_2samp(ref, cur).pvalue
        assert ks_p_value(numeric_data(ref), numeric_data(cur)) == pytest.approx(expected, abs=1e-12)

    def test_ties_match_scipy(self) -> None:
        rng = _rng()
        ref, cur = rng.integers(0, 30, 300).astype(float), rng.integers(2, 32, 250).astype(float)
        assert ks_p_value(numeric_data(ref), numeric_data(cur)) == pytest.approx(stats.ks_2samp(ref, cur).pvalue)


class TestWasserstein:
    """Quantile-form W1 equals scipy.stats.wasserstein_distance; the norm follows evidently."""

    @pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 9), (7, 7), (10, 15), (333, 1000), (4096, 6000), (99991, 4)])
    def test_matches_scipy(self, n: int, m: int) -> None:
        rng = _rng()
        u, v = rng.standard_t(3, size=n), rng.normal(0.3, 2.0, size=m)
        ours = wasserstein_sorted(np.sort(u), np.sort(v))
        assert ours == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12, abs=1e-12)

    def test_ties_and_integers(self) -> None:
        rng = _rng()
        u, v = rng.integers(0, 5, 120).astype(float), rng.integers(0, 7, 77).astype(float)
        assert wasserstein_sorted(np.sort(u), np.sort(v)) == pytest.approx(stats.wasserstein_distance(u, v))

    def test_normed_by_population_std(self) -> None:
        rng = _rng()
        ref, cur = rng.normal(5, 3, 2000), rng.normal(5.5, 3, 1500)
        expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert wasserstein_normed(numeric_data(ref), numeric_data(cur)) == pytest.approx(expected, rel=1e-12)

    def test_constant_reference_uses_floor(self) -> None:
        ref, cur = np.full(2000, 3.0), np.full(1500, 3.5)
        assert wasserstein_normed(numeric_data(ref), numeric_data(cur)) == pytest.approx(0.5 / 0.001)

    def test_empty_sample_rejected(self) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            wasserstein_sorted(np.empty(0), np.ones(3))


class TestChiSquare:
    """Goodness-of-fit p-value equals scipy.stats.chisquare on evidently's expected counts."""

    def test_matches_scipy(self) -> None:
        rng = _rng()
        ref = rng.choice(["a", "b", "c", "d"], 600, p=[0.4, 0.3, 0.2, 0.1])
        cur = rng.choice(["a", "b", "c", "d"], 450, p=[0.35, 0.3, 0.25, 0.1])
        keys = ["a", "b", "c", "d"]
        f_obs = np.array([np.sum(cur == k) for k in keys], dtype=float)
        f_exp = np.array([np.sum(ref == k) for k in keys], dtype=float) * len(cur) / len(ref)
        expected = stats.chisquare(f_obs, f_exp).pvalue
        assert chisquare_p_value(categorical_data(ref), categorical_data(cur)) == pytest.approx(expected, rel=1e-12)

    def test_agrees_with_contingency_direction(self) -> None:
        """Not the same test as chi2_contingency, but both see the same strong shift."""
        ref = np.array(["x"] * 300 + ["y"] * 300 + ["z"] * 300)
        cur = np.array(["x"] * 150 + ["y"] * 300 + ["z"] * 450)
        table = np.array([[300, 300, 300], [150, 300, 450]])
        assert stats.chi2_contingency(table).pvalue < 1e-10
        assert chisquare_p_value(categorical_data(ref), categorical_data(cur)) < 1e-10

    def test_category_unseen_in_reference_is_drift(self) -> None:
        ref = np.array(["a"] * 50 + ["b"] * 50 + ["c"] * 50)
        cur = np.array(["a"] * 50 + ["b"] * 50 + ["c"] * 49 + ["new"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # our wrapper must not leak scipy's divide warning
            p = chisquare_p_value(categorical_data(ref), categorical_data(cur))
        assert p == 0.0
        assert column_drift(ref, cur, column_type="cat").drifted


class TestZTest:
    """Pooled two-proportion z-test equals statsmodels and evidently's formula."""

    def test_matches_statsmodels(self) -> None:
        proportion = pytest.importorskip("statsmodels.stats.proportion")
        rng = _rng()
        ref, cur = (
            rng.choice(["no", "yes"], 800, p=[0.7, 0.3]),
            rng.choice(["no", "yes"], 600, p=[0.64, 0.36]),
        )
        # evidently maps the first sorted value ("no") to 0 and everything else to 1.
        count = np.array([np.sum(ref != "no"), np.sum(cur != "no")])
        nobs = np.array([ref.size, cur.size])
        _, expected = proportion.proportions_ztest(count, nobs)
        assert z_p_value(categorical_data(ref), categorical_data(cur)) == pytest.approx(expected, rel=1e-9)

    def test_identical_single_value_is_one(self) -> None:
        assert z_p_value(categorical_data(np.array([True] * 10)), categorical_data(np.array([True] * 7))) == 1.0

    def test_different_single_values(self) -> None:
        p = z_p_value(categorical_data(np.array(["a"] * 40)), categorical_data(np.array(["b"] * 40)))
        assert p < 1e-10


class TestJensenShannonAndPsi:
    """Distances over evidently's binning equal scipy's jensenshannon and the PSI formula."""

    def test_categorical_shares(self) -> None:
        rng = _rng()
        ref = rng.choice(list("abcde"), 3000, p=[0.3, 0.3, 0.2, 0.1, 0.1])
        cur = rng.choice(list("abcdf"), 2000, p=[0.2, 0.3, 0.2, 0.2, 0.1])
        keys = sorted(set(ref) | set(cur))
        p = np.array([np.mean(ref == k) for k in keys])
        q = np.array([np.mean(cur == k) for k in keys])
        assert jensenshannon_value(categorical_data(ref), categorical_data(cur)) == pytest.approx(
            distance.jensenshannon(p, q), rel=1e-12
        )
        p_f, q_f = p.copy(), q.copy()
        p_f[p_f == 0], q_f[q_f == 0] = 0.0001, 0.0001
        expected_psi = np.sum((p_f - q_f) * np.log(p_f / q_f))
        assert psi_value(categorical_data(ref), categorical_data(cur)) == pytest.approx(expected_psi, rel=1e-12)

    def test_numeric_histogram_psi(self) -> None:
        rng = _rng()
        ref, cur = rng.normal(size=5000), rng.normal(0.2, size=4000)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        p = np.histogram(ref, edges)[0] / ref.size
        q = np.histogram(cur, edges)[0] / cur.size

        def tiny(s: np.ndarray) -> np.ndarray:
            smallest = min(s[s > 0])
            return np.where(s == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, s)

        p_f, q_f = tiny(p), tiny(q)
        assert psi_value(numeric_data(ref), numeric_data(cur)) == pytest.approx(
            np.sum((p_f - q_f) * np.log(p_f / q_f)), rel=1e-12
        )
        assert jensenshannon_value(numeric_data(ref), numeric_data(cur)) == pytest.approx(
            distance.jensenshannon(p, q), rel=1e-12
        )

    @pytest.mark.parametrize("kind", ["num", "cat"])
    def test_binned_shares_equal_evidently(self, kind: str) -> None:
        utils = pytest.importorskip("evidently.legacy.calculations.stattests.utils")
        from evidently.legacy.core import ColumnType

        rng = _rng()
        if kind == "num":
            ref, cur = rng.gamma(2.0, size=2500), np.concatenate([rng.gamma(2.5, size=1800), [40.0]])
            ours = binned_shares(numeric_data(ref), numeric_data(cur), fill_zeroes=True)
            theirs = utils.get_binned_data(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 30, True)
        else:
            ref, cur = rng.choice(list("abc"), 900), rng.choice(list("abcd"), 700)
            ref_s, cur_s = pd.Series(ref), pd.Series(cur)
            theirs = utils.get_binned_data(ref_s, cur_s, ColumnType.Categorical, 30, True)
            # evidently's key order is list(set(...)); the same call in this process gives the same order.
            keys = utils.get_unique_not_nan_values_list_from_series(current_data=cur_s, reference_data=ref_s)
            ref_d, cur_d = categorical_data(ref), categorical_data(cur)
            shares = binned_shares(ref_d, cur_d, fill_zeroes=True)
            position = {k: i for i, k in enumerate(union_keys(ref_d, cur_d))}
            ours = tuple(np.array([s[position[k]] for k in keys]) for s in shares)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-15)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=0, atol=1e-15)


class TestBinningPrimitives:
    """Sturges edges and sorted-array histogram counts equal numpy's."""

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_sturges_matches_numpy_float(self, seed: int) -> None:
        data = np.random.default_rng(seed).lognormal(size=1234 + seed * 1000)
        np.testing.assert_array_equal(
            sturges_edges(data.min(), data.max(), data.size), np.histogram_bin_edges(data, bins="sturges")
        )

    def test_sturges_matches_numpy_integer_width_floor(self) -> None:
        data = np.random.default_rng(3).integers(0, 25, size=2_000_000)
        np.testing.assert_array_equal(
            sturges_edges(data.min(), data.max(), data.size, integer_valued=True),
            np.histogram_bin_edges(data, bins="sturges"),
        )

    def test_sturges_degenerate_range(self) -> None:
        data = np.full(50, 7.0)
        np.testing.assert_array_equal(sturges_edges(7.0, 7.0, 50), np.histogram_bin_edges(data, bins="sturges"))

    def test_histogram_counts_edges_inclusive_like_numpy(self) -> None:
        edges = np.array([0.0, 1.0, 2.0, 3.0])
        values = np.sort(np.array([-1.0, 0.0, 0.5, 1.0, 1.0, 2.999, 3.0, 3.0, 4.0]))
        np.testing.assert_array_equal(histogram_counts(values, edges), np.histogram(values, edges)[0])


class TestRegistry:
    """Methods are looked up by name with evidently's allowed column types."""

    def test_builtin_names(self) -> None:
        assert {"ks", "wasserstein", "psi", "jensenshannon", "chisquare", "z"} <= set(available_stat_tests())

    def test_defaults_and_rules(self) -> None:
        assert get_stat_test("ks").default_threshold == 0.05
        assert get_stat_test("ks").is_drift(0.05, 0.05)  # evidently: p <= threshold
        assert not get_stat_test("chisquare").is_drift(0.05, 0.05)  # evidently: p < threshold
        assert get_stat_test("wasserstein").is_drift(0.1, 0.1)  # evidently: value >= threshold
        assert not get_stat_test("psi").is_drift(float("nan"), 0.1)

    def test_unknown_and_wrong_kind(self) -> None:
        with pytest.raises(ValueError, match="unknown drift method"):
            get_stat_test("nope")
        with pytest.raises(ValueError, match="not applicable"):
            column_drift([1.0, 2.0, 3.0], [1.0, 2.0], method="chisquare", column_type="num")

    def test_custom_registration(self) -> None:
        def mean_gap(ref: object, cur: object) -> float:
            assert isinstance(ref, CategoricalData) or hasattr(ref, "sorted_values")
            return abs(float(np.mean(ref.sorted_values)) - float(np.mean(cur.sorted_values)))  # type: ignore[union-attr]

        spec = StatTestSpec("test_mean_gap", "mean gap", frozenset({"num"}), 0.5, "at_or_above", mean_gap)
        register_stat_test(spec, replace=True)
        result = column_drift(np.zeros(10), np.ones(10), method="test_mean_gap")
        assert result.value == 1.0
        assert result.drifted
        with pytest.raises(ValueError, match="already registered"):
            register_stat_test(spec)


class TestDefaultSelection:
    """default_stat_test picks the same test as evidently's get_stattest for every branch."""

    @pytest.mark.parametrize("n_ref", [999, 1000, 1001, 5000])
    @pytest.mark.parametrize("n_values", [1, 2, 3, 5, 6, 25])
    @pytest.mark.parametrize("kind", ["num", "cat"])
    def test_matches_evidently(self, n_ref: int, n_values: int, kind: str) -> None:
        registry = pytest.importorskip("evidently.legacy.calculations.stattests.registry")
        from evidently.legacy.core import ColumnType

        rng = np.random.default_rng(n_ref + n_values)
        ref = rng.integers(0, n_values, n_ref).astype(float)
        cur = rng.integers(0, n_values, 300).astype(float)
        ref[:n_values] = np.arange(n_values)  # make sure every value occurs
        if kind == "cat":
            ref_in, cur_in = ref.astype(int).astype(str), cur.astype(int).astype(str)
            ours = default_stat_test(categorical_data(ref_in), categorical_data(cur_in), "cat")
            column_type = ColumnType.Categorical
        else:
            ref_in, cur_in = ref, cur
            ours = default_stat_test(numeric_data(ref_in), numeric_data(cur_in), "num")
            column_type = ColumnType.Numerical
        theirs = registry.get_stattest(pd.Series(ref_in), pd.Series(cur_in), column_type, None)
        assert ours.name == theirs.name
        assert ours.default_threshold == theirs.default_threshold
