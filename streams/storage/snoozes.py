"""The ``monitor_snoozes`` table: a monitor, or one model of it, not delivered until a time.

A snooze is a row per (project, monitor, model); ``model = '*'`` is the whole monitor. The newest row
stands (``ReplacingMergeTree(version)``); lifting a snooze writes ``until`` = now. The engine asks once
per window which of its breaching monitors are snoozed for the window's model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

ALL_MODELS = "*"


@dataclass(frozen=True, slots=True)
class Snooze:
    """One snooze as stored: ``model`` is a model name or ``*`` (every model of the monitor)."""

    monitor_id: str
    model: str
    until: datetime
    snoozed_by: str
    note: str


def _snooze(row: Mapping[str, Any]) -> Snooze:
    return Snooze(row["monitor_id"], row["model"], as_utc(row["until"]), row["snoozed_by"], row["note"])


class SnoozeStore:
    """All SQL about ``monitor_snoozes``."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db = storage.database

    def put(self, project: str, monitor_id: str, model: str, until: datetime, *, by: str, note: str = "") -> Snooze:
        """Snooze (or, with ``until`` in the past, lift the snooze of) ``monitor_id`` for ``model``."""
        self._storage.insert_rows(
            "monitor_snoozes",
            ["project", "monitor_id", "model", "until", "snoozed_by", "note", "version"],
            [[project, monitor_id, model, until, by, note, time.time_ns()]],
        )
        return Snooze(monitor_id, model, as_utc(until), by, note)

    def active(self, project: str, monitor_ids: Sequence[str], *, at: datetime) -> list[Snooze]:
        """Snoozes of these monitors (any model) still running at ``at``."""
        if not monitor_ids:
            return []
        rows = self._storage.rows(
            "SELECT monitor_id, model, until, snoozed_by, note "
            f"FROM {self._db}.monitor_snoozes FINAL WHERE project = {{project:String}} "
            "AND monitor_id IN {ids:Array(String)} AND until > {at:DateTime64(3, 'UTC')} ORDER BY monitor_id, model",
            {"project": project, "ids": sorted(set(monitor_ids)), "at": ch_time(at)},
        )
        return [_snooze(row) for row in rows]

    def snoozed_until(
        self, project: str, monitor_ids: Sequence[str], model: str, *, at: datetime
    ) -> dict[str, datetime]:
        """monitor_id → until, for the monitors snoozed at ``at`` for ``model`` (or for every model)."""
        out: dict[str, datetime] = {}
        for snooze in self.active(project, monitor_ids, at=at):
            if snooze.model in (model, ALL_MODELS):
                out[snooze.monitor_id] = max(out.get(snooze.monitor_id, snooze.until), snooze.until)
        return out
