"""The ``references`` table: the drift reference of each (project, model), as bounded profile JSON.

Two slots per model (migration 0005): explicit references (an uploaded dataset or a pinned time range)
and the default (the model's first closed window). Readers take the newest explicit one when there is
one, so a default written by a process that had not seen an upload never shadows it. Caching and the
rules of when to write belong to ``streams.stats.references.ReferenceStore``, which calls this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson

from detectors import ReferenceProfile
from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

ReferenceKind = Literal["first_window", "range", "dataset"]


@dataclass(frozen=True)
class Reference:
    project: str
    model: str
    kind: ReferenceKind
    rows: int
    profile: ReferenceProfile
    range_start: datetime | None = None
    range_end: datetime | None = None
    created_at: datetime | None = None


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def active(storage: Storage, project: str, model: str) -> Reference | None:
    """The model's reference in use: the newest explicit one, else the newest default; None if none."""
    rows = storage.rows(
        f"SELECT kind, rows, profile, range_start, range_end, created_at FROM {storage.database}.references "
        "FINAL WHERE project = {project:String} AND model = {model:String} "
        "ORDER BY explicit DESC, created_at DESC LIMIT 1",
        {"project": project, "model": model},
    )
    if not rows:
        return None
    row = rows[0]
    return Reference(
        project,
        model,
        row["kind"],
        int(row["rows"]),
        ReferenceProfile.from_dict(orjson.loads(row["profile"])),
        _utc(row["range_start"]),
        _utc(row["range_end"]),
        _utc(row["created_at"]),
    )


def insert(
    storage: Storage,
    project: str,
    model: str,
    kind: ReferenceKind,
    profile: ReferenceProfile,
    rows: int,
    range_start: datetime | None,
    range_end: datetime | None,
) -> Reference:
    """Store a reference in its slot (explicit unless ``kind`` is the first window) and return it."""
    row = {
        "project": project,
        "model": model,
        "kind": kind,
        "explicit": int(kind != "first_window"),
        "range_start": ch_time(range_start) if range_start else None,
        "range_end": ch_time(range_end) if range_end else None,
        "rows": rows,
        "profile": orjson.dumps(profile.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode(),
    }
    storage.insert_json("references", orjson.dumps([row]))
    return Reference(project, model, kind, rows, profile, range_start, range_end, datetime.now(UTC))
