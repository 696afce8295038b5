"""Redaction of personal data and secrets at ingest, before anything is stored, logged, dead-lettered,
published to Kafka or put in an alert.

Every ingest path goes through ``Privacy``: the API's publisher is wrapped by ``RedactingPublisher``
(``POST /v1/inferences``, ``/v1/feedback`` and OTLP traces and logs, before the embedded bus or Kafka),
and the pipeline redacts what it decodes from Kafka (SDK envelopes) and every dead letter's payload.
Redaction is idempotent (placeholders are never detected again), so an event the API already redacted
passes the worker unchanged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import TypeVar

import structlog

from schemas.events import DeadLetter
from schemas.privacy import RedactionPolicy
from schemas.records import FeedbackRecord, InferenceRecord
from schemas.settings import Settings
from streams import metrics
from streams.bus import Publisher
from streams.privacy.redact import Redactor
from streams.storage import Storage, redaction_policies
from streams.storage.otlp_texts import LogTexts

__all__ = ["Privacy", "RedactingPublisher", "Redactor", "default_policy"]

log = structlog.get_logger(__name__)
_CACHE_SECONDS = 10.0


def default_policy(settings: Settings) -> RedactionPolicy:
    """The server-wide policy of projects without their own (``LOOPWATCH_REDACTION_MODE``)."""
    return RedactionPolicy(mode=settings.redaction_mode)


class Privacy:
    """Each project's ``Redactor``: its stored policy or the server's default.

    Policies are held as a snapshot of the whole (small) ``redaction_policies`` table, loaded at start
    (``refresh``) and again when 10 s old, so redacting never waits for storage on the event loop: a
    policy changed on another replica applies here within 10 s, one changed here at once.
    """

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self._storage = storage
        self._settings = settings
        secret = settings.redaction_key
        self._key = secret.get_secret_value().encode() if secret is not None else None
        self._default = self.redactor(default_policy(settings))
        self._snapshot: dict[str, Redactor] = {}
        self._expires = float("-inf")  # not loaded yet
        self._lock = threading.Lock()

    def redactor(self, policy: RedactionPolicy) -> Redactor:
        """A redactor for ``policy`` with this server's key and phone region; ``ValueError`` if it cannot run."""
        return Redactor(policy, key=self._key, phone_region=self._settings.redaction_phone_region)

    @property
    def default(self) -> Redactor:
        return self._default

    def refresh(self) -> None:
        """Load every project's policy (a query; call it off the event loop)."""
        snapshot = {}
        for project, policy in redaction_policies.all_policies(self._storage).items():
            try:
                snapshot[project] = self.redactor(policy)
            except ValueError:  # e.g. pseudonyms, and the key was removed since: mask rather than store in clear
                log.warning("redaction_policy_unusable", project=project)
                snapshot[project] = self.redactor(RedactionPolicy(mode="mask"))
        with self._lock:
            self._snapshot, self._expires = snapshot, time.monotonic() + _CACHE_SECONDS

    @property
    def stale(self) -> bool:
        return time.monotonic() >= self._expires

    async def warm(self) -> None:
        """Refresh a stale snapshot off the event loop (a fresh one: nothing to await)."""
        if self.stale:
            await asyncio.to_thread(self.refresh)

    def policy(self, project: str) -> tuple[RedactionPolicy, bool]:
        """The policy that applies to ``project`` and whether it is the project's own (read from storage)."""
        own = redaction_policies.get(self._storage, project)
        return (own, True) if own is not None else (self._default.policy, False)

    def set_policy(self, project: str, policy: RedactionPolicy | None) -> bool:
        """Store (or with None remove) the project's policy; takes effect in this process at once."""
        if policy is None:
            changed = redaction_policies.delete(self._storage, project)
        else:
            self.redactor(policy)  # refuses a policy this server cannot apply (pseudonyms without a key)
            redaction_policies.put(self._storage, project, policy)
            changed = True
        self.refresh()
        log.info("redaction_policy_set", project=project, mode=policy.mode if policy else "default")
        return changed

    def for_project(self, project: str) -> Redactor:
        """The project's redactor (refreshes a stale snapshot first: worker threads call this)."""
        if self.stale:
            self.refresh()
        return self._snapshot.get(project, self._default)

    def inferences(self, records: Sequence[InferenceRecord]) -> None:
        """Redact ``records`` in place, each under its project's policy."""
        for project, group in _by_project(records).items():
            redactor = self.for_project(project)
            redactor.inferences(group)  # sets each record's ``pii`` counts (UNSET when off: nothing was looked at)
            if redactor.active:
                _report(redactor, project)

    def feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Redact ``records`` in place, each under its project's policy, setting their ``pii`` counts."""
        for project, group in _by_project(records).items():
            redactor = self.for_project(project)
            redactor.feedbacks(group)  # sets each record's ``pii`` counts (UNSET when off: nothing was looked at)
            if redactor.active:
                _report(redactor, project)

    def log_texts(self, project: str, items: Sequence[LogTexts]) -> list[LogTexts]:
        """OTLP log events' prompts and responses (kept in ``otlp_texts`` until their span comes), redacted
        as an inference's prompt and response are."""
        redactor = self.for_project(project)
        if not redactor.active:
            return list(items)
        out = []
        for item in items:
            record = InferenceRecord(model="-", prompt=item.prompt, response=item.response)
            redactor.inference(record)
            counts = record.pii if isinstance(record.pii, dict) else {}
            texts = {name: count for name, count in counts.items() if name.split(".", 1)[0] in ("prompt", "response")}
            out.append(LogTexts(item.inference_id, record.prompt, record.response, texts))
        _report(redactor, project)
        return out

    def dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Dead letters whose payload (an event that failed to decode, as sent) is redacted: under the
        project's policy when the letter names one, else the server's default, with every field's text
        scanned (the payload is raw JSON); a payload a ``drop`` policy would drop is replaced by a note."""
        out = []
        for letter in letters:
            redactor = self.for_project(letter.project) if letter.project else self._default
            if not redactor.active or not letter.payload:
                out.append(letter)
                continue
            payload = redactor.text(letter.payload)
            _report(redactor, letter.project)
            out.append(letter.model_copy(update={"payload": payload or "(payload dropped by the redaction policy)"}))
        return out


T = TypeVar("T", InferenceRecord, FeedbackRecord)


def _by_project(records: Sequence[T]) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = {}
    for record in records:
        groups.setdefault(record.project, []).append(record)
    return groups


def _report(redactor: Redactor, project: str) -> None:
    """Log what was found, by kind and count only (never a value)."""
    if redactor.findings:
        found = dict(redactor.findings)
        redactor.findings.clear()
        log.info("pii_redacted", project=project, mode=redactor.policy.mode, found=found)


class RedactingPublisher:
    """A ``Publisher`` that redacts events before the one it wraps (embedded bus or Kafka) sees them."""

    def __init__(self, inner: Publisher, privacy: Privacy) -> None:
        self.inner = inner
        self.privacy = privacy

    async def publish_inferences(self, events: Sequence[InferenceRecord]) -> None:
        await self.privacy.warm()
        self.privacy.inferences(events)
        metrics.redaction_scans("api", len(events))
        await self.inner.publish_inferences(events)

    async def publish_feedback(self, events: Sequence[FeedbackRecord]) -> None:
        await self.privacy.warm()
        self.privacy.feedback(events)
        metrics.redaction_scans("api", len(events))
        await self.inner.publish_feedback(events)
