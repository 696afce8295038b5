"""Delivery bookkeeping: what the emitter accepted, sent, dropped, failed or refused.

Counts are kept under one lock shared with the buffer, so "pending" (accepted but not yet settled) is
always exact and ``flush`` can wait on it instead of polling.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """A point-in-time snapshot of an emitter's counters.

    ``queued`` is a level (events accepted and not yet settled: in the buffer or in flight); the other
    four are running totals since construction. Every accepted event ends as exactly one of ``sent`` or
    ``failed``; ``dropped`` (buffer full or emitter closed) and ``invalid`` (failed validation) were never
    accepted.
    """

    queued: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    invalid: int = 0


@dataclass(slots=True)
class Ledger:
    """The mutable counters behind :class:`EmitterStats`; callers hold the emitter's lock."""

    accepted: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    invalid: int = 0

    @property
    def pending(self) -> int:
        return self.accepted - self.sent - self.failed

    def snapshot(self) -> EmitterStats:
        return EmitterStats(
            queued=self.pending,
            sent=self.sent,
            dropped=self.dropped,
            failed=self.failed,
            invalid=self.invalid,
        )
