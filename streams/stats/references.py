"""Drift references per (project, model): a pinned time range, an uploaded dataset, or by default the
model's first closed window with enough rows. Stored as bounded ``ReferenceProfile`` JSON, so workers
load them cheaply and memory stays bounded however large the reference was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import orjson

from detectors import ReferenceProfile
from streams.stats.window_data import DriftColumns
from streams.storage import Storage, as_utc, ch_time

ReferenceKind = Literal["first_window", "range", "dataset"]
_CACHE_SECONDS = 10.0


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


def profile_from_columns(columns: DriftColumns) -> ReferenceProfile:
    return ReferenceProfile.from_arrays(columns.columns, column_types=columns.kinds)  # type: ignore[arg-type]


def columns_from_records(records: list[Mapping[str, Any]]) -> DriftColumns:
    """An uploaded dataset (rows of feature values, optional prompt/response) as drift columns."""
    from streams.stats.window_data import drift_columns

    features, prompts, responses = [], [], []
    for record in records:
        row = dict(record)
        prompts.append(str(row.pop("prompt", "") or ""))
        responses.append(str(row.pop("response", "") or ""))
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        features.append(orjson.dumps(clean, option=orjson.OPT_SERIALIZE_NUMPY).decode())
    return drift_columns(features, prompts, responses)


class ReferenceStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._cache: dict[tuple[str, str], tuple[float, Reference | None]] = {}
        self._lock = threading.Lock()

    def get(self, project: str, model: str) -> Reference | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((project, model))
        if hit and hit[0] > now:
            return hit[1]
        rows = self._storage.rows(
            f"SELECT kind, rows, profile, range_start, range_end, created_at FROM {self._storage.database}.references "
            "FINAL WHERE project = {project:String} AND model = {model:String} LIMIT 1",
            {"project": project, "model": model},
        )
        reference = None
        if rows:
            row = rows[0]
            reference = Reference(
                project, model, row["kind"], int(row["rows"]), ReferenceProfile.from_dict(orjson.loads(row["profile"])),
                _utc(row["range_start"]), _utc(row["range_end"]), _utc(row["created_at"]),
            )  # fmt: skip
        with self._lock:
            self._cache[(project, model)] = (now + _CACHE_SECONDS, reference)
        return reference

    def save(
        self,
        project: str,
        model: str,
        kind: ReferenceKind,
        columns: DriftColumns,
        *,
        range_start: datetime | None = None,
        range_end: datetime | None = None,
    ) -> Reference:
        profile = profile_from_columns(columns)
        row = {
            "project": project,
            "model": model,
            "kind": kind,
            "range_start": ch_time(range_start) if range_start else None,
            "range_end": ch_time(range_end) if range_end else None,
            "rows": columns.rows,
            "profile": orjson.dumps(profile.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        }
        self._storage.insert_json("references", orjson.dumps([row]))
        reference = Reference(project, model, kind, columns.rows, profile, range_start, range_end, datetime.now(UTC))
        with self._lock:
            self._cache[(project, model)] = (time.monotonic() + _CACHE_SECONDS, reference)
        return reference
