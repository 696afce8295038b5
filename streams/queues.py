"""Review queues keep filling by their rules as calls and their feedback arrive.

A queue's rules are applied to the stored calls when it is made (and on ``POST …/fill``); after that
``QueueFiller.run`` — on a timer (``LOOPWATCH_QUEUE_FILL_SECONDS``) in every process that evaluates
windows (embedded runner, Kafka workers) — applies them to what arrived since. Per queue with rules:

1. *watermark*: a stored position (arrival time, call id) in arrival order
   (``streams.storage.queues.Watermark``), so a restarted process neither reads again nor skips;
2. *arrivals*: the next ``LOOPWATCH_QUEUE_FILL_BATCH`` calls past it that arrived at least
   ``LOOPWATCH_QUEUE_FILL_SETTLE_SECONDS`` ago (an insert in flight is not visible yet): new calls, calls
   that feedback arrived for (a thumbs-down or an evaluator's score hours later brings its call in),
   calls of windows flagged as drifted since;
3. *one process per pass*: a claim on (queue, watermark) decides which process reads them; a claim
   whose holder died (or went silent on another host for ``STALE_AFTER``) is taken over by the next
   generation of the key;
4. *take*: the rules over just those calls, sampled by a hash of the call id (the same calls on any
   replica), each added once, up to the queue's ``max_items``; then the watermark moves to the last
   arrival read. A process killed between the two redoes the pass, which adds nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from schemas.queues import Queue
from schemas.settings import Settings
from streams.storage import StorageError
from streams.storage.claims import Claims
from streams.storage.client import Storage
from streams.storage.queues import QueueStore, Watermark

log = structlog.get_logger(__name__)

STALE_AFTER = timedelta(minutes=5)  # a pass claimed by a process on another host this long ago is taken over


def pass_key(queue: Queue, mark: Watermark) -> str:
    """The claim of the pass that starts at ``mark``."""
    return f"{queue.queue_id}@{mark.arrived_at.isoformat()}/{mark.inference_id}"


class QueueFiller:
    """Fills every project's rule-based queues from what arrived since their watermark."""

    def __init__(self, storage: Storage, settings: Settings, *, owner: str | None = None) -> None:
        self.queues = QueueStore(storage)
        self.claims = Claims(storage, owner=owner)
        self.settings = settings

    def run(self) -> int:
        """One pass over every queue with rules; returns the calls added. A queue whose storage read
        fails is logged and skipped (the next pass resumes from its watermark)."""
        added = 0
        for queue in self.queues.with_rules():
            try:
                added += self.fill(queue)
            except StorageError as exc:
                log.warning("queue_fill_failed", project=queue.project, queue_id=queue.queue_id, error=str(exc))
        return added

    def fill(self, queue: Queue) -> int:
        """One pass of one queue: returns the calls added (0 also when another process has this pass)."""
        mark = self.queues.watermark(queue)
        upto = self.queues.clock() - timedelta(seconds=self.settings.queue_fill_settle_seconds)
        if upto <= mark.arrived_at:
            return 0
        arrivals = self.queues.arrivals(queue, mark, upto, self.settings.queue_fill_batch)
        if not arrivals or not self._claim(queue, mark):
            return 0
        added = self.queues.take(queue, [arrival.inference_id for arrival in arrivals])
        self.queues.advance(queue, arrivals[-1])
        log.info(
            "queue_filled",
            project=queue.project,
            queue_id=queue.queue_id,
            arrivals=len(arrivals),
            added=added,
            watermark=arrivals[-1].arrived_at.isoformat(),
        )
        return added

    def _claim(self, queue: Queue, mark: Watermark) -> bool:
        return self.claims.claim_or_take_over(
            queue.project, "queue_fill", pass_key(queue, mark), stale_after=STALE_AFTER
        )
