"""Migration 0006 converts a store created by the previous schema: rows kept, sorted by window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import orjson
import pytest

import streams.storage.client as storage_client
from schemas.ddl import migrations
from schemas.settings import Settings
from schemas.stats import WindowKey
from streams.stats.window_data import fetch_window_rows
from streams.storage import Storage
from tests.waiting import wait_until

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _old_store(storage: Storage) -> None:
    """The database as the schema before 0006 left it."""
    assert storage.migrate(up_to=5) == [1, 2, 3, 4, 5]


def _events(count: int) -> bytes:
    return orjson.dumps(
        [
            {
                "project": "p",
                "event_id": f"e{n}",
                "model": f"m{n % 3}",
                "timestamp": (START + timedelta(seconds=n)).isoformat(),
                "latency_ms": float(n),
                "status": "ok",
                "prompt": "hi",
                "response": "hello",
                "tags": {"route": "/chat"},
            }
            for n in range(count)
        ]
    )


def _sorting_key(storage: Storage) -> str:
    return str(
        storage.scalar(
            "SELECT sorting_key FROM system.tables WHERE database = {db:String} AND name = 'inferences'",
            {"db": storage.database},
        )
    )


class TestInferencesByWindow:
    """An existing store is converted in place; duplicates still collapse; window reads are exact."""

    def test_converts_a_store_of_the_previous_schema(self, settings: Settings) -> None:
        storage = Storage(settings)
        try:
            _old_store(storage)
            assert _sorting_key(storage) == "project, event_id"
            storage.insert_json("inferences", _events(600))
            storage.insert_json("inferences", _events(300))  # re-sent: the same 300 events again

            assert storage.migrate(up_to=6) == [6]
            db = storage.database
            assert _sorting_key(storage) == "project, model, timestamp, event_id"
            assert int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")) == 600
            assert int(storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences")) == 600
            leftovers = storage.scalar(
                "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'inferences_by_window'",
                {"db": db},
            )
            assert int(leftovers) == 0

            storage.insert_json("inferences", _events(30))  # re-sent after the conversion
            storage.command(f"OPTIMIZE TABLE {db}.inferences FINAL")
            assert int(storage.scalar(f"SELECT count() FROM {db}.inferences")) == 600

            storage.migrate()  # the later migrations too: today's reads need today's columns (inferences.pii)
            key = WindowKey("p", "m1", START, START + timedelta(minutes=5))
            window = fetch_window_rows(storage, key)
            assert len(window) == 100  # seconds 0-299 of model m1: every third event
            assert sorted(window.latencies.tolist()) == [float(n) for n in range(1, 300, 3)]
        finally:
            storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
            storage.close()

    def test_rerun_after_a_crash_keeps_every_row(self, settings: Settings) -> None:
        """A crash between the swap and the bookkeeping re-runs the whole file: nothing is lost."""
        storage = Storage(settings)
        try:
            _old_store(storage)
            storage.insert_json("inferences", _events(200))
            storage.migrate(up_to=6)  # the crash comes right after 6 (later ones add columns 6 does not copy)
            (conversion,) = [m for m in migrations() if m.version == 6]
            for statement in conversion.render(storage.database):
                storage.command(statement)
            db = storage.database
            assert int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")) == 200
            assert _sorting_key(storage) == "project, model, timestamp, event_id"
        finally:
            storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
            storage.close()


class _Events:
    """Stands in for ``streams.storage.client.log``: keeps the name of every event logged."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def _record(self, event: str, **_: object) -> None:
        self.events.append(event)

    info = warning = error = debug = _record


class TestMigrationLock:
    """Processes that start together migrate one after the other."""

    def test_a_second_migrator_waits_for_the_lock(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        waits = _Events()
        monkeypatch.setattr(storage_client, "log", waits)  # the waiter says each time it finds the lock held
        holder, waiter = Storage(settings), Storage(settings)
        try:
            db = holder.database
            holder.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            holder.command(
                f"CREATE TABLE {db}.migration_lock (pid UInt32) ENGINE = Memory"
            )  # another process migrating
            with ThreadPoolExecutor(1) as pool:
                applied = pool.submit(waiter.migrate)
                wait_until(lambda: waits.events.count("migration_lock_wait") >= 2, "the second migrator to wait twice")
                assert not applied.done(), "the migration must wait for the lock"
                assert "migration_applied" not in waits.events
                holder.command(f"DROP TABLE {db}.migration_lock")
                assert applied.result(timeout=60) == [m.version for m in migrations()]
            tables = holder.query("SELECT name FROM system.tables WHERE database = {db:String}", {"db": db})
            assert "migration_lock" not in {row[0] for row in tables.result_rows}
        finally:
            holder.command(f"DROP DATABASE IF EXISTS {holder.database}")
            holder.close()
            waiter.close()
