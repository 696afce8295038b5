"""ReferenceProfile: bounded, JSON round-trip, and equal to raw drift when small."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors import (
    OTHER_CATEGORY,
    CategoricalReference,
    NumericReference,
    ProfileConfig,
    ReferenceProfile,
    column_drift,
    dataset_drift,
)
from detectors.profile import quantile_sample


def _reference(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "few": rng.integers(0, 4, n).astype(float),
            "binary": rng.integers(0, 2, n).astype(float),
            "ints": rng.integers(0, 100, n),
            "color": rng.choice(["red", "green", "blue", "grey"], n),
            "yes_no": rng.choice(["yes", "no"], n),
        }
    )


def _current(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(0.2, 1.1, n),
            "few": rng.integers(0, 5, n).astype(float),
            "binary": rng.integers(0, 2, n).astype(float),
            "ints": rng.integers(5, 105, n),
            "color": rng.choice(["red", "green", "blue", "purple"], n),
            "yes_no": rng.choice(["yes", "no"], n, p=[0.7, 0.3]),
        }
    )
    frame.loc[::13, "x"] = np.nan
    return frame


def _round_trip(profile: ReferenceProfile) -> ReferenceProfile:
    return ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict(), allow_nan=False)))


class TestReferenceProfile:
    """Profiles serialise losslessly and reproduce raw-reference drift below the sample cap."""

    @pytest.mark.parametrize("n_ref", [400, 3000])
    @pytest.mark.parametrize("method", [None, "ks", "wasserstein", "psi", "jensenshannon"])
    def test_equal_to_raw_when_under_cap(self, n_ref: int, method: str | None) -> None:
        reference, current = _reference(n_ref), _current(700)
        types = {"x": "num", "few": "num", "binary": "num", "ints": "num", "color": "cat", "yes_no": "cat"}
        if method in ("ks", "wasserstein"):
            numeric = ["x", "few", "binary", "ints"]
            reference, current = reference[numeric], current[numeric]
        profile = _round_trip(ReferenceProfile.from_arrays(reference, column_types=types))
        raw = dataset_drift(reference, current, column_types=types, method=method)
        via_profile = dataset_drift(profile, current, column_types=types, method=method)
        assert raw.to_dict() == via_profile.to_dict()

    def test_inferred_types_match_inference_on_reference(self) -> None:
        profile = ReferenceProfile.from_arrays(_reference(500))
        assert isinstance(profile.columns["x"], NumericReference)
        assert isinstance(profile.columns["color"], CategoricalReference)
        text = ReferenceProfile.from_arrays({"t": [f"unique text {i}" for i in range(20)]})
        assert "t" in text.skipped
        assert not text.columns

    def test_json_round_trip_is_lossless(self) -> None:
        reference = _reference(50_000)
        reference.loc[::7, "x"] = None
        profile = ReferenceProfile.from_arrays(reference, config=ProfileConfig(sample_size=1000, max_categories=3))
        restored = _round_trip(profile)
        assert restored.to_dict() == profile.to_dict()
        x = restored.columns["x"]
        assert isinstance(x, NumericReference)
        assert x.sample.size == 1000
        assert x.n_missing == 50_000 // 7 + 1
        assert len(json.dumps(profile.to_dict())) < 200_000

    def test_rejects_unknown_version(self) -> None:
        data = ReferenceProfile.from_arrays({"x": [1.0, 2.0]}).to_dict()
        data["version"] = 99
        with pytest.raises(ValueError, match="version"):
            ReferenceProfile.from_dict(data)

    def test_sampled_reference_keeps_exact_statistics(self) -> None:
        rng = np.random.default_rng(3)
        values = rng.lognormal(size=100_000)
        column = NumericReference.from_values(values, sample_size=5_000)
        assert column.n == 100_000
        assert column.sample.size == 5_000
        assert column.std == pytest.approx(np.std(values), rel=1e-12)
        assert (column.minimum, column.maximum) == (values.min(), values.max())
        current = rng.lognormal(0.1, size=30_000)
        exact = column_drift(values, current)
        approx = column_drift(column, current)
        assert approx.method == exact.method == "wasserstein"
        assert approx.value == pytest.approx(exact.value, abs=2e-3)
        assert approx.drifted == exact.drifted
        for method in ("psi", "jensenshannon"):
            assert column_drift(column, current, method=method).value == pytest.approx(
                column_drift(values, current, method=method).value, abs=5e-3
            )

    def test_quantile_sample_is_deterministic_and_spread(self) -> None:
        values = np.arange(1000, dtype=float)
        sample = quantile_sample(values, 10)
        np.testing.assert_array_equal(sample, [50, 150, 250, 350, 450, 550, 650, 750, 850, 950])
        assert quantile_sample(values[:5], 10) is not None
        assert quantile_sample(values[:5], 10).size == 5

    def test_truncated_categories_fold_into_other(self) -> None:
        reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 5 + ["e"] * 5
        column = CategoricalReference.from_values(reference, max_categories=3)
        assert column.truncated
        assert column.counts.as_dict() == {"a": 50, "b": 30, OTHER_CATEGORY: 20}
        current = ["a"] * 50 + ["b"] * 30 + ["zzz"] * 20  # unseen, but lands in __other__
        result = column_drift(column, current)
        assert result.method == "chisquare"
        assert not result.drifted
        untruncated = CategoricalReference.from_values(reference)
        assert column_drift(untruncated, current).value == 0.0  # new category -> p = 0 like evidently
