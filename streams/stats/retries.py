"""Windows whose statistics are not stored yet, and when to try each of them again.

The window tracker forgets a window once it is due, so without this a failed computation lost the
window's statistics (and its alerts) until a restart. The rule, applied by ``StatsEngine``:

* **storage unavailable** (a ``StorageError`` and storage does not answer a ping): every window of the
  run stays pending, none counts a failure, and they are tried again after a backoff that doubles per
  consecutive outage, up to ``max_delay``. Retried until written, like the sink's raw events.
* **a failure of this window only** (any other exception, or a ``StorageError`` while storage answers,
  e.g. a query that trips on this window's data): the other windows go on; this one is tried again
  with the same backoff, at most ``max_failures`` times in all, then given up with an error log
  (``window_abandoned``). A restarted worker tries it once more (``StatsEngine.recover`` re-tracks
  windows that have events but no statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.stats import WindowKey


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay: float = 0.5
    max_delay: float = 30.0
    max_failures: int = 8

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure in a row (1-based)."""
        return float(min(self.first_delay * 2 ** (attempt - 1), self.max_delay))


@dataclass(slots=True)
class _Pending:
    failures: int
    not_before: float


class PendingWindows:
    """Pending windows of one kind of computation (closing, or a late-feedback quality refresh).

    Not thread-safe: the engine runs one computation at a time (``Pipeline`` holds a lock around it).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._pending: dict[WindowKey, _Pending] = {}
        self._outages = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def ready(self, now: float) -> list[WindowKey]:
        """Pending windows whose backoff has passed."""
        return [key for key, pending in self._pending.items() if pending.not_before <= now]

    def waiting(self, key: WindowKey, now: float) -> bool:
        """True while ``key`` sits out its backoff."""
        pending = self._pending.get(key)
        return pending is not None and pending.not_before > now

    def storage_down(self, keys: list[WindowKey], now: float) -> float:
        """Keep ``keys`` pending without counting a failure; returns the delay before the next try."""
        self._outages += 1
        delay = self.policy.delay(self._outages)
        for key in keys:
            pending = self._pending.setdefault(key, _Pending(0, now))
            pending.not_before = now + delay
        return delay

    def failed(self, key: WindowKey, now: float) -> float | None:
        """Count a failure of ``key``; returns the delay before its next try, or None: given up."""
        pending = self._pending.setdefault(key, _Pending(0, now))
        pending.failures += 1
        if pending.failures >= self.policy.max_failures:
            del self._pending[key]
            return None
        delay = self.policy.delay(pending.failures)
        pending.not_before = now + delay
        return delay

    def keep(self, keys: list[WindowKey], now: float) -> None:
        """Keep ``keys`` pending, due at once, without counting anything (a stop cut the run short)."""
        for key in keys:
            self._pending.setdefault(key, _Pending(0, now))

    def written(self, key: WindowKey) -> None:
        """The window's rows are stored: forget it, and storage is evidently back."""
        self._pending.pop(key, None)
        self._outages = 0
