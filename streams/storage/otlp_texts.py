"""The ``otlp_texts`` table's expiry (its reads and writes are still in ``streams/otlp/texts.py``)."""

from __future__ import annotations

from datetime import datetime

from streams.storage import expiry
from streams.storage.client import Storage


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's OTLP texts kept before ``cutoff`` (they are raw text only)."""
    return expiry.expire(storage, "otlp_texts", project, "ingested_at", cutoff)
