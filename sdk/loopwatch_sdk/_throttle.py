"""Rate-limited warnings, so a dead broker or a bad call in a hot loop cannot flood the host's logs."""

from __future__ import annotations

import threading
import time


class Throttle:
    """Lets one message per key through every ``interval`` seconds and counts the ones held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """The number of messages suppressed since the last one, or ``None`` to suppress this one too."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)
