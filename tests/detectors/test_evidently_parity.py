"""Per-column values, flags and dataset verdicts equal evidently 0.7.23's DataDriftPreset."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from detectors import dataset_drift, infer_column_type

from .conftest import EvidentlyDrift

TOLERANCE = 1e-6


def _frames(scenario: str, n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mixed-type frames: floats, few-valued floats, small ints, strings, binary, bool."""
    rng = np.random.default_rng(seed)
    shift = {"mean_shift": 0.35, "scale_change": 0.0, "categorical_change": 0.0, "no_drift": 0.0}[scenario]
    scale = 1.8 if scenario == "scale_change" else 1.0
    cat_p = [0.2, 0.3, 0.5] if scenario == "categorical_change" else [0.5, 0.3, 0.2]
    bin_p = 0.55 if scenario == "categorical_change" else 0.3

    def make(n: int, current: bool) -> pd.DataFrame:
        s, k = (shift, scale) if current else (0.0, 1.0)
        p_cat = cat_p if current else [0.5, 0.3, 0.2]
        p_bin = bin_p if current else 0.3
        return pd.DataFrame(
            {
                "normal": rng.normal(s, k, n),
                "skewed": rng.lognormal(s, 0.5 * k, n),
                "few_values": rng.integers(0, 4, n).astype(float) + (s > 0),
                "wide_int": rng.integers(0, 50, n) + int(10 * s),
                "small_int": rng.integers(0, 3, n),
                "color": rng.choice(["red", "green", "blue"], n, p=p_cat),
                "flag": rng.choice(["no", "yes"], n, p=[1 - p_bin, p_bin]),
                "is_bot": rng.random(n) < p_bin,
            }
        )

    return make(n_ref, False), make(n_cur, True)


def _assert_equal(ours: object, theirs: EvidentlyDrift) -> None:
    assert set(ours.columns) == set(theirs.columns)  # type: ignore[attr-defined]
    for name, expected in theirs.columns.items():
        got = ours.columns[name]  # type: ignore[attr-defined]
        # evidently shows the display name for auto-selected tests and the given name otherwise.
        assert expected.method in (got.display_name, got.method), name
        assert got.threshold == pytest.approx(expected.threshold), name
        assert abs(got.value - expected.value) <= TOLERANCE, (name, got.value, expected.value)
        assert got.drifted == expected.drifted, name
    assert ours.n_drifted == theirs.count  # type: ignore[attr-defined]
    assert ours.share_drifted == pytest.approx(theirs.share)  # type: ignore[attr-defined]
    assert ours.dataset_drifted == theirs.dataset_drifted  # type: ignore[attr-defined]


class TestDataDriftPresetParity:
    """Default tests and thresholds equal DataDriftPreset for small and large references."""

    @pytest.mark.parametrize("scenario", ["mean_shift", "scale_change", "categorical_change", "no_drift"])
    @pytest.mark.parametrize(("n_ref", "n_cur"), [(600, 500), (2500, 2000)])
    def test_scenario(self, evidently_runner, scenario: str, n_ref: int, n_cur: int) -> None:
        reference, current = _frames(scenario, n_ref, n_cur, seed=zlib.crc32(f"{scenario}-{n_ref}".encode()))
        _assert_equal(dataset_drift(reference, current), evidently_runner(reference, current))

    def test_reference_exactly_1000_rows_is_small(self, evidently_runner) -> None:
        reference, current = _frames("mean_shift", 1000, 800, seed=7)
        ours = dataset_drift(reference, current)
        assert ours.columns["normal"].method == "ks"
        _assert_equal(ours, evidently_runner(reference, current))

    def test_missing_values_dropped_like_evidently(self, evidently_runner) -> None:
        reference, current = _frames("mean_shift", 1500, 900, seed=11)
        rng = np.random.default_rng(5)
        for frame in (reference, current):
            frame.loc[rng.random(len(frame)) < 0.1, "normal"] = np.nan
            frame.loc[rng.random(len(frame)) < 0.05, "skewed"] = np.inf
            frame.loc[rng.random(len(frame)) < 0.05, "skewed"] = np.nan
            frame["color"] = frame["color"].astype(object)
            frame.loc[rng.random(len(frame)) < 0.1, "color"] = None
        _assert_equal(dataset_drift(reference, current), evidently_runner(reference, current))

    def test_infinite_without_nan_follows_value_drift(self, evidently_runner) -> None:
        """evidently's own two paths disagree here; we follow the per-column ValueDrift.

        ValueDrift always replaces +/-inf by NaN and drops it. DriftedColumnsCount (the
        legacy DatasetDriftMetric) only cleans columns where ``isna().any()``, so a
        column with inf but no NaN keeps its inf, the Wasserstein distance becomes NaN
        and the column silently never drifts there.
        """
        rng = np.random.default_rng(17)
        reference = pd.DataFrame({"x": rng.normal(0, 1, 1500), "y": rng.normal(0, 1, 1500)})
        current = pd.DataFrame({"x": rng.normal(0.5, 1, 1200), "y": rng.normal(0, 1, 1200)})
        current.loc[::50, "x"] = np.inf
        theirs = evidently_runner(reference, current)
        ours = dataset_drift(reference, current)
        assert abs(ours.columns["x"].value - theirs.columns["x"].value) <= TOLERANCE
        assert ours.columns["x"].drifted
        assert theirs.columns["x"].drifted
        assert ours.n_drifted == 1
        assert theirs.count == 0

    def test_constant_columns(self, evidently_runner) -> None:
        n = 1200
        reference = pd.DataFrame({"const": np.full(n, 2.5), "const_cat": ["a"] * n, "x": np.linspace(0, 1, n)})
        current = pd.DataFrame({"const": np.full(900, 2.5), "const_cat": ["a"] * 900, "x": np.linspace(0, 1, 900) ** 2})
        _assert_equal(dataset_drift(reference, current), evidently_runner(reference, current))

    @pytest.mark.parametrize("method", ["psi", "jensenshannon"])
    def test_named_method_for_all_columns(self, evidently_runner, method: str) -> None:
        reference, current = _frames("mean_shift", 1500, 1200, seed=3)
        _assert_equal(
            dataset_drift(reference, current, method=method),
            evidently_runner(reference, current, method=method),
        )

    def test_named_numeric_methods_and_threshold(self, evidently_runner) -> None:
        reference, current = _frames("scale_change", 800, 700, seed=9)
        numeric = reference[["normal", "skewed", "wide_int"]]
        for method in ("wasserstein", "ks"):
            theirs = evidently_runner(numeric, current[numeric.columns], method=method, threshold=0.2)
            ours = dataset_drift(numeric, current[numeric.columns], method=method, threshold=0.2)
            _assert_equal(ours, theirs)

    def test_custom_drift_share(self, evidently_runner) -> None:
        reference, current = _frames("categorical_change", 700, 600, seed=13)
        _assert_equal(
            dataset_drift(reference, current, drift_share=0.25),
            evidently_runner(reference, current, drift_share=0.25),
        )


class TestTypeInferenceParity:
    """Column types are inferred from the current data exactly like evidently's infer_column_type."""

    def test_matches_evidently(self) -> None:
        datasets = pytest.importorskip("evidently.core.datasets")
        frame = pd.DataFrame(
            {
                "f": [0.1, 0.2, 0.3, 0.4],
                "i_few": [1, 2, 3, 1],
                "i_many": list(range(4)),
                "b": [True, False, True, True],
                "cat": ["a", "b", "a", "a"],
                "text": ["w x", "y z", "q", "r"],
                "ts": pd.date_range("2024-01-01", periods=4),
                "mixed": [1, "a", 2.0, None],
                "lists": [[1], [2], [3], [4]],
            }
        )
        wide = pd.Series(np.arange(11))
        for column in frame.columns:
            expected = datasets.infer_column_type(frame[column]).value
            # evidently's "list" columns are not drift-testable; we report them as unknown.
            assert infer_column_type(frame[column]) == ("unknown" if expected == "list" else expected), column
        assert infer_column_type(wide) == datasets.infer_column_type(wide).value == "num"
