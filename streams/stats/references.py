"""Drift references per (project, model): a pinned time range, an uploaded dataset, or by default the
model's first closed window with enough rows. Stored as bounded ``ReferenceProfile`` JSON, so workers
load them cheaply and memory stays bounded however large the reference was.

One ``ReferenceStore`` per process: the API shares the stats engine's, so an upload is what the next
window is compared with. Across processes the table decides: explicit references (uploaded or pinned)
and the default live in separate slots and readers prefer the explicit one, so a default saved by a
worker that had not seen the upload yet never shadows it (other processes' caches catch up within
``_CACHE_SECONDS``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson
import structlog

from detectors import ReferenceProfile
from streams.stats.window_data import DriftColumns
from streams.storage import Storage, references
from streams.storage.references import Reference, ReferenceKind

__all__ = ["Reference", "ReferenceKind", "ReferenceStore", "columns_from_records", "profile_from_columns"]

log = structlog.get_logger(__name__)

_CACHE_SECONDS = 10.0


def profile_from_columns(columns: DriftColumns) -> ReferenceProfile:
    return ReferenceProfile.from_arrays(columns.columns, column_types=columns.kinds)


def columns_from_records(records: Sequence[Mapping[str, Any]]) -> DriftColumns:
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
        # Saves take turns, so a default's check-then-write never interleaves with an upload in this process.
        self._save_lock = threading.Lock()
        # Saves per model, so a read that started before a save cannot cache its older answer over the save's.
        self._saves: dict[tuple[str, str], int] = {}

    def get(self, project: str, model: str) -> Reference | None:
        """The active reference, cached for ``_CACHE_SECONDS`` (saves in this process update the cache)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((project, model))
        if hit and hit[0] > now:
            return hit[1]
        return self._load(project, model)

    def _load(self, project: str, model: str) -> Reference | None:
        """Read the active reference from storage (explicit slot first) and cache it."""
        now = time.monotonic()
        with self._lock:
            saves = self._saves.get((project, model), 0)
        reference = references.active(self._storage, project, model)
        with self._lock:
            if self._saves.get((project, model), 0) != saves:  # a save landed meanwhile: newer than this read
                return self._cache[(project, model)][1]
            self._cache[(project, model)] = (now + _CACHE_SECONDS, reference)
        return reference

    def _remember(self, reference: Reference) -> None:
        key = (reference.project, reference.model)
        with self._lock:
            self._saves[key] = self._saves.get(key, 0) + 1
            self._cache[key] = (time.monotonic() + _CACHE_SECONDS, reference)

    def save(
        self,
        project: str,
        model: str,
        kind: Literal["range", "dataset"],
        columns: DriftColumns,
        *,
        range_start: datetime | None = None,
        range_end: datetime | None = None,
    ) -> Reference:
        """Set an explicit reference (a pinned range or an uploaded dataset); it replaces any other."""
        with self._save_lock:
            reference = self._insert(project, model, kind, columns, range_start, range_end)
            self._remember(reference)
            return reference

    def ensure_first_window(
        self, project: str, model: str, columns: DriftColumns, *, range_start: datetime, range_end: datetime
    ) -> Reference:
        """Make this window the default reference unless the model has one; return the active reference.

        Called when the cached answer was "none", which may be stale: storage is read again first, and
        read once more after the write, so a reference set meanwhile (here or by another process) is the
        one returned and used. The default goes to its own slot, so it cannot replace an explicit one.
        """
        with self._save_lock:
            existing = self._load(project, model)
            if existing is not None:
                return existing
            created = self._insert(project, model, "first_window", columns, range_start, range_end)
            log.info(
                "reference_created",
                project=project,
                model=model,
                kind="first_window",
                window_start=range_start.isoformat(),
                rows=columns.rows,
            )
            active = self._load(project, model)
            if active is None:  # not readable yet (asynchronous inserts on a server): what was written
                active = created
                self._remember(created)
            return active

    def _insert(
        self,
        project: str,
        model: str,
        kind: ReferenceKind,
        columns: DriftColumns,
        range_start: datetime | None,
        range_end: datetime | None,
    ) -> Reference:
        return references.insert(
            self._storage,
            project,
            model,
            kind,
            profile_from_columns(columns),
            columns.rows,
            range_start,
            range_end,
        )
