"""Constants copied from evidently 0.7.23 so our defaults provably match its DataDriftPreset.

Every value names the evidently source it mirrors (paths relative to
``site-packages/evidently``). They live in one module so that a future evidently
upgrade is a one-file review rather than a hunt through the stat tests.
"""

from typing import Final

LARGE_REFERENCE_ROWS: Final[int] = 1000
"""``legacy/calculations/stattests/registry.py::_get_default_stattest``: the
reference is "large" when it has *more than* 1000 non-missing rows."""

FEW_VALUES: Final[int] = 5
"""Same function: a numerical column with ``<= 5`` distinct values (reference and
current together) is tested like a categorical one."""

BINARY_VALUES: Final[int] = 2
"""Same function: ``<= 2`` distinct values selects the Z-test instead of chi-square."""

HISTOGRAM_MIN_UNIQUE: Final[int] = 20
"""``legacy/calculations/stattests/utils.py::get_binned_data``: numerical data is
histogrammed only when the *reference* has more than 20 distinct values;
otherwise PSI / Jensen-Shannon compare per-value frequencies."""

WASSERSTEIN_MIN_NORM: Final[float] = 0.001
"""``legacy/calculations/stattests/wasserstein_distance_norm.py``: the
reference std used as the norm is floored at 0.001 (constant columns)."""

PSI_EMPTY_BIN_FLOOR: Final[float] = 0.0001
"""``get_binned_data(feel_zeroes=True)``: empty bins get 0.0001, or the smallest
non-empty share / 1e6 when that share is itself <= 0.0001."""

PSI_EMPTY_BIN_DIVISOR: Final[float] = 10.0**6
"""See :data:`PSI_EMPTY_BIN_FLOOR`."""

INTEGER_CARDINALITY_LIMIT: Final[int] = 10
"""``core/datasets.py::infer_column_type``: integer columns with ``<= 10``
distinct values are inferred categorical."""

TEXT_UNIQUE_SHARE: Final[float] = 0.5
"""``core/datasets.py::infer_column_type``: string columns whose distinct count
exceeds half the non-null count are inferred as free text."""

DATASET_DRIFT_SHARE: Final[float] = 0.5
"""``presets/drift.py::DataDriftPreset.drift_share`` and
``legacy/calculations/data_drift.py::get_dataset_drift`` (``share >= drift_share``)."""

__all__ = [
    "BINARY_VALUES",
    "DATASET_DRIFT_SHARE",
    "FEW_VALUES",
    "HISTOGRAM_MIN_UNIQUE",
    "INTEGER_CARDINALITY_LIMIT",
    "LARGE_REFERENCE_ROWS",
    "PSI_EMPTY_BIN_DIVISOR",
    "PSI_EMPTY_BIN_FLOOR",
    "TEXT_UNIQUE_SHARE",
    "WASSERSTEIN_MIN_NORM",
]
