"""ClickHouse storage behind one small interface; the DSN picks embedded chDB or a server."""

from streams.storage.client import Storage, StorageError, StorageLockedError, refuse_if_held
from streams.storage.times import as_utc, ch_time

__all__ = ["Storage", "StorageError", "StorageLockedError", "as_utc", "ch_time", "refuse_if_held"]
