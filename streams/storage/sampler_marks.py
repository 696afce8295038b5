"""The ``sampler_marks`` table: how far each evaluation sampler has read (``inferences``, ``feedback``).

A sampler reads the rows ingested at or after its mark, queues the calls its evaluators take, and only
then moves the mark: a process killed in between reads those rows again (queueing is idempotent). The
furthest mark wins (``ReplacingMergeTree(mark)``), so processes sharing ClickHouse never move it back.
"""

from __future__ import annotations

from datetime import datetime

from streams.storage.client import Storage
from streams.storage.times import as_utc

TABLE = "sampler_marks"


def read(storage: Storage, source: str) -> datetime | None:
    """The mark of ``source``; None when it never sampled."""
    value = storage.scalar(
        f"SELECT max(mark) FROM {storage.database}.{TABLE} WHERE source = {{source:String}} HAVING count() > 0",
        {"source": source},
    )
    return None if value is None else as_utc(value)


def move(storage: Storage, source: str, mark: datetime) -> None:
    storage.insert_rows(TABLE, ["source", "mark"], [[source, mark]])


def now(storage: Storage) -> datetime:
    """ClickHouse's clock: the one ``ingested_at`` is stamped with."""
    return as_utc(storage.scalar("SELECT now64(3, 'UTC')"))
