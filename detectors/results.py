"""Result records returned by the drift functions.

Frozen dataclasses (not pydantic) because they are produced in hot loops and are
plain data; ``to_dict`` gives a JSON-ready form for storage and APIs.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from detectors.kinds import ColumnKind, Correction, ResultStatus


@dataclass(frozen=True, slots=True)
class ColumnDriftResult:
    """Drift verdict for one column (or one embedding matrix).

    ``value`` is the score exactly as evidently reports it (``drift_score``): a
    p-value for ``ks``/``chisquare``/``z``, a distance for the others. ``p_value``
    repeats it for p-value tests and is ``None`` for distances.
    ``adjusted_p_value`` is set only when a multiple-testing correction was applied,
    and then ``drifted`` is decided on it. ``status="insufficient_data"`` (with NaN
    value, ``drifted=False`` and a ``reason``) replaces evidently's ``ValueError`` for
    empty columns.
    """

    column: str | None
    column_type: ColumnKind | None
    method: str | None
    display_name: str | None
    value: float
    threshold: float | None
    drifted: bool
    p_value: float | None
    n_reference: int
    n_current: int
    status: ResultStatus = "ok"
    adjusted_p_value: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (floats stay floats; NaN is left to the serializer)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DatasetDriftResult:
    """Per-column drift plus the dataset verdict evidently's DataDriftPreset reports.

    ``share_drifted`` = drifted / evaluated columns (columns with ``status == "ok"``);
    ``dataset_drifted`` is ``share_drifted >= drift_share`` (evidently's
    ``get_dataset_drift``). ``skipped`` maps columns that were not tested (text,
    datetime, unknown type, missing on one side) to the reason.
    """

    columns: Mapping[str, ColumnDriftResult]
    n_columns: int
    n_drifted: int
    share_drifted: float
    drift_share: float
    dataset_drifted: bool
    correction: Correction = "none"
    skipped: Mapping[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of drifted columns, in evaluation order."""
        return [name for name, res in self.columns.items() if res.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form with per-column dicts."""
        return {
            "columns": {name: res.to_dict() for name, res in self.columns.items()},
            "n_columns": self.n_columns,
            "n_drifted": self.n_drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "dataset_drifted": self.dataset_drifted,
            "correction": self.correction,
            "skipped": dict(self.skipped),
        }


__all__ = ["ColumnDriftResult", "DatasetDriftResult"]
