"""Erasure of one user's data (the right to be forgotten) from everywhere loopwatch keeps events.

A user is the ``user_id`` tag of their events. Erasing removes, in the project: the events, the feedback
on them and the feedback the user gave (``feedback.user_id``), the OTLP texts kept for those events, and
the dead letters whose payload names the user, the user's rows in dataset versions (whose downloads
then no longer match their ``sha256``: erasure overrides a version's immutability) and the review queue
items and reviews of their calls. Each table's module owns its ``DELETE``
(``ALTER TABLE … DELETE`` with ``mutations_sync``: the call returns once the rows are gone from every
part, projections included). Events go last, so an erasure interrupted half-way finds the same events
again when repeated. Window statistics are aggregates of many events and are kept.

Alerts whose entities name the user (``user_id=<id>``: a monitor grouped by the ``user_id`` tag, or one
watching each user for silence) go too, with their acknowledgements and resolutions (which repeat their
words). A review queue's watermark (``queue_watermarks``: an arrival time and the id of the call that
arrived then) that stands at one of the user's calls loses the call's id and keeps its time.

Tables that hold nothing of a user, so erasure leaves them: ``sampler_marks`` (one time per sampler
source), ``retention_policies`` and ``redaction_policies`` (a project's settings), and the ``pii``
counts of ``inferences`` (numbers per field and kind, removed with their event); the word index of
``inferences`` is rebuilt from the remaining rows when the mutation rewrites their parts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog

from streams.storage import Storage, alerts, datasets, dead_letters, feedback, inferences, queues
from streams.storage import otlp_texts as texts

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Erasure:
    project: str
    subject: str  # ``subject_ref`` of the user id: what logs and the audit log hold
    inferences: int
    feedback: int
    otlp_texts: int
    dead_letters: int
    dataset_rows: int
    review_items: int
    alerts: int

    def counts(self) -> dict[str, int]:
        """Rows removed per table."""
        return {
            "inferences": self.inferences,
            "feedback": self.feedback,
            "otlp_texts": self.otlp_texts,
            "dead_letters": self.dead_letters,
            "dataset_rows": self.dataset_rows,
            "review_items": self.review_items,
            "alerts": self.alerts,
        }


def subject_ref(project: str, user_id: str) -> str:
    """A stable, non-reversible reference to a user (logs and the audit log never hold the id itself)."""
    return hashlib.sha256(f"{project}\0{user_id}".encode()).hexdigest()[:16]


def erase_subject(storage: Storage, project: str, user_id: str) -> Erasure:
    """Remove the user's events and feedback from every table; repeating it removes nothing more."""
    event_ids = inferences.erase_user_ids(storage, project, user_id)
    erasure = Erasure(
        project=project,
        subject=subject_ref(project, user_id),
        feedback=feedback.erase_user(storage, project, user_id, event_ids),
        otlp_texts=texts.erase(storage, project, event_ids),
        dead_letters=dead_letters.erase_user(storage, project, user_id),
        dataset_rows=datasets.erase_user(storage, project, user_id, event_ids),
        review_items=queues.erase_calls(storage, project, event_ids),
        alerts=alerts.erase_user(storage, project, user_id),
        inferences=inferences.erase_user(storage, project, user_id, event_ids),
    )
    log.info("subject_erased", project=project, subject=erasure.subject, **erasure.counts())
    return erasure
