"""The ``dead_letters`` table: what could not be accepted, kept with its reason.

The sink writes the dead letters of the event pipeline (undecodable messages, events storage refused)
as part of its flushes; the OTLP routes write the GenAI spans and log records an export could not turn
into events (``store``). The dashboard reads a project's recent ones (``recent``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import TypeAdapter

from schemas.events import DeadLetter
from streams.storage import expiry
from streams.storage.client import Storage
from streams.storage.times import as_utc

_LETTERS: TypeAdapter[list[DeadLetter]] = TypeAdapter(list[DeadLetter])


def rows_json(letters: Sequence[DeadLetter]) -> bytes:
    """Dead letters as the JSON rows ``dead_letters`` takes."""
    return _LETTERS.dump_json(list(letters))


def store(storage: Storage, letters: Sequence[DeadLetter]) -> None:
    """Write ``letters`` now (one insert)."""
    if letters:
        storage.insert_json("dead_letters", rows_json(letters))


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as people read it: when, which ingest path, and why (not its payload)."""

    received_at: datetime
    source: str
    error: str


def recent(storage: Storage, project: str, *, days: int = 7, limit: int = 10) -> list[StoredDeadLetter]:
    """The project's newest dead letters of the last ``days`` days, newest first."""
    rows = storage.query(
        f"SELECT received_at, source, error FROM {storage.database}.dead_letters "
        "WHERE project = {project:String} AND received_at >= now64(3) - toIntervalDay({days:UInt16}) "
        "ORDER BY received_at DESC LIMIT {limit:UInt32}",
        {"project": project, "days": days, "limit": limit},
    ).result_rows
    return [StoredDeadLetter(as_utc(received_at), source, error) for received_at, source, error in rows]


def erase_user(storage: Storage, project: str, user_id: str) -> int:
    """Delete the project's dead letters whose payload names ``user_id`` as a ``user_id`` (an event's
    tag or a feedback item's field, as JSON); returns how many."""
    quoted = re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", orjson.dumps(user_id).decode())  # RE2 syntax
    params = {"project": project, "pattern": rf'"user_id"\s*:\s*{quoted}'}
    where = "project = {project:String} AND position(payload, 'user_id') > 0 AND match(payload, {pattern:String})"
    return expiry.delete_where(storage, "dead_letters", where, params)


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    return expiry.expire(storage, "dead_letters", project, "received_at", cutoff)
