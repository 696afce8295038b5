"""Registry of drift statistics by name, so a monitor config can say ``method: psi``.

Names, display names, allowed column kinds, default thresholds and the drift
comparison of the built-in tests are those of evidently 0.7.23's ``StatTest``
objects. The comparison differs between tests in evidently and we keep each one:
``ks`` flags drift when ``p <= threshold``, ``chisquare`` and ``z`` when
``p < threshold``, distances (``wasserstein``, ``psi``, ``jensenshannon``) when
``value >= threshold``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias

import numpy as np

from detectors.column_data import CategoricalData, NumericData
from detectors.kinds import ColumnKind

ColumnData: TypeAlias = NumericData | CategoricalData
StatFunc: TypeAlias = Callable[[ColumnData, ColumnData], float]
DriftRule: TypeAlias = Literal["p_below", "p_at_or_below", "at_or_above"]


@dataclass(frozen=True, slots=True)
class StatTestSpec:
    """A named drift statistic: how to compute it and how to read it.

    ``func`` receives prepared reference and current data (numeric tests get
    :class:`NumericData`, categorical ones :class:`CategoricalData`) and returns the
    score evidently reports (a p-value for hypothesis tests, a distance otherwise).
    """

    name: str
    display_name: str
    column_kinds: frozenset[ColumnKind]
    default_threshold: float
    drift_rule: DriftRule
    func: StatFunc

    @property
    def is_p_value(self) -> bool:
        """Whether the score is a p-value (and therefore eligible for multiple-testing correction)."""
        return self.drift_rule != "at_or_above"

    def is_drift(self, value: float, threshold: float) -> bool:
        """Apply this test's comparison; NaN never signals drift."""
        if np.isnan(value):
            return False
        if self.drift_rule == "p_below":
            return bool(value < threshold)
        if self.drift_rule == "p_at_or_below":
            return bool(value <= threshold)
        return bool(value >= threshold)


_REGISTRY: dict[str, StatTestSpec] = {}


def register_stat_test(spec: StatTestSpec, *, replace: bool = False) -> StatTestSpec:
    """Add a test under ``spec.name``; refuses to shadow an existing name unless ``replace``."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"stat test {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_stat_test(name: str, column_kind: ColumnKind | None = None) -> StatTestSpec:
    """Look a test up by name, checking it accepts ``column_kind`` like evidently does."""
    try:
        spec = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift method {name!r}; available: {sorted(_REGISTRY)}") from None
    if column_kind is not None and column_kind not in spec.column_kinds:
        raise ValueError(
            f"drift method {name!r} is not applicable to {column_kind!r} columns (allowed: {sorted(spec.column_kinds)})"
        )
    return spec


def available_stat_tests() -> Mapping[str, StatTestSpec]:
    """Read-only view of all registered tests."""
    return MappingProxyType(_REGISTRY)


__all__ = [
    "ColumnData",
    "DriftRule",
    "StatFunc",
    "StatTestSpec",
    "available_stat_tests",
    "get_stat_test",
    "register_stat_test",
]
