"""Ingest first: the closer gives way while events are arriving.

In one process the closer and ingest share two cores and one GIL. Working through a backlog of
thousands of due windows (a backfill, a restart) at full speed took a fifth of ingest's throughput
(``bench/ingest_http.py``, backlog run). While events arrived within the last ``BUSY_SECONDS``, the
closer now spends at most ``share`` of its time computing windows of a backlog (due for longer than
a window, ``StatsEngine._overdue``; windows closing on time are never held back): after a window
that took ``t`` seconds it pauses ``t * (1 / share - 1)``. With no ingest it runs flat out. The backlog's size is the
``loopwatch_windows_pending`` gauge.

The default share (0.25, ``LOOPWATCH_CLOSE_SHARE_UNDER_INGEST``) was measured: beside 1,835 due windows
ingest kept 53-54k events/s (55k alone) while 4-5 windows/s closed; 0.5 left it at 46-51k, never
pausing at 43-50k. The pause keys on events arriving, not on how many: light traffic slows catch-up too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BUSY_SECONDS = 1.0  # ingest counts as active this long after its last batch


class Pacer:
    def __init__(
        self,
        share: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._share = share
        self._clock = clock
        self._sleep = sleep
        self._last_ingest = float("-inf")

    def ingest_seen(self) -> None:
        """A batch of events arrived (called on the ingest path: one clock read)."""
        self._last_ingest = self._clock()

    def pause(self, spent: float) -> float:
        """After a window that took ``spent`` seconds: give way if ingest is active; returns the pause."""
        if self._share >= 1 or self._clock() - self._last_ingest > BUSY_SECONDS:
            return 0.0
        pause = spent * (1 / self._share - 1)
        self._sleep(pause)
        return pause
