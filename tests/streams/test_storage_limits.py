"""The embedded engine starts with bounded caches (``LOOPWATCH_CHDB_CACHE_MB``), not ClickHouse's
server defaults of 5 GiB each, which let the API process grow with every stored part."""

from __future__ import annotations

from schemas.settings import Settings
from streams.storage import Storage
from streams.storage.client import chdb_cache_limits


def test_engine_caches_are_bounded(storage: Storage, settings: Settings) -> None:
    names = ", ".join(f"'{name}'" for name in chdb_cache_limits(1))
    running = dict(storage.query(f"SELECT name, value FROM system.server_settings WHERE name IN ({names})").result_rows)
    expected = chdb_cache_limits(settings.chdb_cache_mb)
    assert {name: int(value) for name, value in running.items()} == expected
    assert expected["mark_cache_size"] == settings.chdb_cache_mb * 1024 * 1024 // 2
    assert sum(expected.values()) <= settings.chdb_cache_mb * 1024 * 1024
