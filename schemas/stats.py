"""The statistics contract: one ``StatRow`` per computed number, as stored in ``window_stats``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Family = Literal["drift", "quality", "cost", "latency"]
FAMILIES: tuple[Family, ...] = ("drift", "quality", "cost", "latency")


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One tumbling window of one model."""

    project: str
    model: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class StatRow:
    """One statistic of one window. ``dimension`` names the feature/descriptor/tag ('' = whole model)."""

    project: str
    model: str
    window_start: datetime
    window_end: datetime
    family: Family
    metric: str
    value: float
    dimension: str = ""
    model_version: str = ""
    p_value: float | None = None
    threshold: float | None = None
    flagged: bool = False
    sample_size: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> WindowKey:
        return WindowKey(self.project, self.model, self.window_start, self.window_end)
