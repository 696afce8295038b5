"""Retention per project and kind of data: a periodic sweeper that expires what a project's
``RetentionPolicy`` says is too old, under the server's global TTLs (the ceiling for everyone).

ClickHouse TTL expressions cannot read a per-project table, so expiry is a mutation per project and
kind (``ALTER TABLE … UPDATE/DELETE``, in each table's module under ``streams/storage/``). Each pass
is done once across replicas and workers: the pass (its start rounded down to the interval) is claimed
per project (``streams.storage.claims``) and only the winner sweeps that project. A pass does at most
``max_steps`` project-and-kind steps; what is left waits for the next pass. A step with nothing due
costs one count and no mutation, so repeated passes are cheap and change nothing. The pipeline runs a
pass every ``LOOPWATCH_RETENTION_SWEEP_SECONDS`` from its window closer (embedded runner, Kafka workers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from schemas.privacy import RetentionKind
from streams.storage import (
    Claims,
    Storage,
    alerts,
    dead_letters,
    feedback,
    inferences,
    otlp_texts,
    retention_policies,
    window_stats,
)

log = structlog.get_logger(__name__)

CLAIM_KIND = "retention"


def _raw_text(storage: Storage, project: str, cutoff: datetime) -> int:
    return (
        inferences.blank_text_before(storage, project, cutoff)
        + feedback.blank_text_before(storage, project, cutoff)
        + otlp_texts.delete_before(storage, project, cutoff)
    )


EXPIRE: dict[RetentionKind, Callable[[Storage, str, datetime], int]] = {
    "raw_text": _raw_text,
    "events": inferences.delete_before,
    "feedback": feedback.delete_before,
    "window_stats": window_stats.delete_before,
    "dead_letters": dead_letters.delete_before,
    "alerts": alerts.delete_before,
}


@dataclass
class SweepResult:
    """Rows expired per project and kind in one pass, and the steps left for the next pass."""

    expired: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_projects: list[str] = field(default_factory=list)  # swept by another process this pass
    left: int = 0


class RetentionSweeper:
    def __init__(
        self, storage: Storage, *, interval_seconds: float = 3600.0, max_steps: int = 50, claims: Claims | None = None
    ) -> None:
        self.storage = storage
        self.interval = interval_seconds
        self.max_steps = max_steps
        self.claims = claims or Claims(storage)

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """One pass at ``now``: every project with a policy that this process wins the pass of."""
        now = now or datetime.now(UTC)
        pass_key = f"pass:{int(now.timestamp() // self.interval)}"
        result = SweepResult()
        steps = 0
        for project, policy in sorted(retention_policies.all_policies(self.storage).items()):
            days = policy.days()
            if not days:
                continue
            if pass_key not in self.claims.claim(project, CLAIM_KIND, [pass_key]):
                result.skipped_projects.append(project)
                continue
            for kind, limit in days.items():
                if steps >= self.max_steps:
                    result.left += 1
                    continue
                steps += 1
                count = EXPIRE[kind](self.storage, project, now - timedelta(days=limit))
                result.expired.setdefault(project, {})[kind] = count
                if count:
                    log.info("retention_expired", project=project, kind=kind, days=limit, rows=count)
        if result.left:
            log.warning("retention_pass_bounded", steps=steps, left=result.left)
        return result
