"""Which calls an evaluator takes: scope and filters, then a deterministic share.

The share is decided by a hash of (evaluator, event id), so every replica and worker, and a re-sent
event, gets the same answer without coordinating.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from schemas.evaluators import ANY, Evaluator

_SCALE = float(2**64)


def sample_point(evaluator_id: str, event_id: str) -> float:
    """A uniform number in [0, 1) fixed by the pair: the first 8 bytes of SHA-256 of
    ``evaluator_id \x1f event_id`` as a big-endian integer over 2^64. ClickHouse computes the same
    number (``streams.storage.inferences.ingested_since``), so the sampler reads back only sampled calls."""
    digest = hashlib.sha256(f"{evaluator_id}\x1f{event_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def sampled(evaluator: Evaluator, event_id: str) -> bool:
    rate = evaluator.sampling_rate
    return rate >= 1.0 or (rate > 0.0 and sample_point(evaluator.evaluator_id, event_id) < rate)


def matches(evaluator: Evaluator, model: str, model_version: str, status: str, tags: Mapping[str, str]) -> bool:
    """Scope and the call's own filters (the feedback filters are checked where feedback arrives)."""
    if evaluator.scope not in (ANY, model):
        return False
    filters = evaluator.filters
    if filters.model_version is not None and filters.model_version != model_version:
        return False
    if filters.status is not None and filters.status != status:
        return False
    return all(tags.get(key) == value for key, value in filters.tags.items())
