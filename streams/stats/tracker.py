"""Which windows are open and when they close.

Tumbling windows per (project, model) on event time. A window closes when the model's watermark (the
newest event time seen) passes its end plus the allowed lateness, or, for a model that went quiet, when
no event for it has arrived for ``lateness + window`` seconds of wall time. Only this bookkeeping is in
memory (a few timestamps per model); the statistics are computed from ClickHouse when a window closes,
so memory does not grow with traffic and a restarted worker loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.stats import WindowKey


def window_bounds(timestamp: datetime, seconds: int) -> tuple[datetime, datetime]:
    epoch = int(timestamp.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return start, start + timedelta(seconds=seconds)


@dataclass
class _ModelState:
    watermark: datetime
    last_arrival: float
    open: set[datetime] = field(default_factory=set)


class WindowTracker:
    def __init__(self, window_seconds: int, lateness_seconds: int) -> None:
        self.window_seconds = window_seconds
        self.lateness = timedelta(seconds=lateness_seconds)
        self._idle_seconds = lateness_seconds + window_seconds
        self._models: dict[tuple[str, str], _ModelState] = {}

    def observe(self, project: str, model: str, timestamps: Iterable[datetime], *, now: float | None = None) -> None:
        arrival = time.monotonic() if now is None else now
        seconds = [ts.timestamp() for ts in timestamps]
        if not seconds:
            return
        width = self.window_seconds
        starts = {int(s - s % width) for s in seconds}  # epoch seconds of every window touched
        newest = datetime.fromtimestamp(max(seconds), UTC)
        state = self._models.get((project, model))
        if state is None:
            state = self._models[(project, model)] = _ModelState(newest, arrival)
        state.open.update(datetime.fromtimestamp(start, UTC) for start in starts)
        state.watermark = max(state.watermark, newest)
        state.last_arrival = arrival

    def reopen(self, key: WindowKey) -> None:
        """Track a window found unclosed in storage (start-up recovery)."""
        state = self._models.setdefault((key.project, key.model), _ModelState(key.end, float("-inf")))
        state.open.add(key.start)

    def due(self, *, now: float | None = None) -> list[WindowKey]:
        """Windows ready to close, oldest first; they are forgotten once returned."""
        wall = time.monotonic() if now is None else now
        width = timedelta(seconds=self.window_seconds)
        ready: list[WindowKey] = []
        for (project, model), state in self._models.items():
            idle = wall - state.last_arrival >= self._idle_seconds
            for start in sorted(state.open):
                if idle or start + width + self.lateness <= state.watermark:
                    ready.append(WindowKey(project, model, start, start + width))
            for key in ready:
                if (key.project, key.model) == (project, model):
                    state.open.discard(key.start)
        return sorted(ready, key=lambda key: (key.start, key.project, key.model))

    def is_open(self, key: WindowKey) -> bool:
        state = self._models.get((key.project, key.model))
        return state is not None and key.start in state.open

    def pending(self) -> int:
        return sum(len(state.open) for state in self._models.values())
