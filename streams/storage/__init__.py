"""ClickHouse storage behind one small interface; the DSN picks embedded chDB or a server."""

from streams.storage.claims import Claims, Holder, generation, process_owner
from streams.storage.client import (
    Storage,
    StorageError,
    StorageLockedError,
    StorageRejectedError,
    refuse_if_held,
)
from streams.storage.times import as_utc, ch_time, time_range

__all__ = [
    "Claims",
    "Holder",
    "Storage",
    "StorageError",
    "StorageLockedError",
    "StorageRejectedError",
    "as_utc",
    "ch_time",
    "generation",
    "process_owner",
    "refuse_if_held",
    "time_range",
]
