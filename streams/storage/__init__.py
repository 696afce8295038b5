"""ClickHouse storage behind one small interface; the DSN picks embedded chDB or a server."""

from streams.storage.client import Storage, StorageError

__all__ = ["Storage", "StorageError"]
