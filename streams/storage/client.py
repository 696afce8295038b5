"""The one owner of clickhouse-connect clients.

``chdb:///dir`` selects the in-process engine, ``http(s)://host:8123[/db]`` a server: the rest of the
code cannot tell them apart. Clients are per thread because a clickhouse-connect client is not safe to
share across concurrent queries, and chDB has no async client, so callers in an event loop reach storage
through worker threads.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.ddl import migrations
from schemas.settings import Settings

log = structlog.get_logger(__name__)

MIGRATION_LOCK_STALE = 3600  # seconds: a migration (0006 rebuilds the inferences table) may take long

# Inserts take JSON rows as pydantic dumps them: ISO timestamps, objects into String columns.
_JSON_INSERT_SETTINGS = {
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": 1,
    "input_format_null_as_default": 1,
    "input_format_skip_unknown_fields": 0,
}


class StorageError(RuntimeError):
    """Anything that went wrong talking to ClickHouse, with the statement kind that failed."""


class StorageRejectedError(StorageError):
    """ClickHouse refused the data itself (a value it cannot parse or store, a violated constraint):
    sending the same rows again fails the same way, unlike an outage. ``code`` is the server's error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ClickHouse error codes that are about the rows sent, not about the server or the connection: the same
# insert fails again however often it is retried. Timeouts, memory, read-only, too many parts, unknown
# tables (a migration not applied yet) are left out on purpose: those may pass on a later try.
# ...except rows naming a column the table lacks (117 INCORRECT_DATA "Unknown field found"): a process of
# a newer release writing to a database an older one migrated. That is a deploy to finish, so it is
# retried rather than turning every event into a dead letter.
SCHEMA_MISMATCH = ("Unknown field found",)
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        128,  # TOO_LARGE_ARRAY_SIZE
        130,  # CANNOT_READ_ARRAY_FROM_TEXT
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        376,  # CANNOT_PARSE_UUID
        395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)


class StorageLockedError(StorageError):
    """The embedded engine's directory is held by another process (chDB opens a directory in one
    process at a time, e.g. a running ``loopwatch serve``)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"the embedded database {path} is in use by {holder}")


def _chdb_path(dsn: str) -> Path | None:
    """The directory of a ``chdb:///dir`` DSN (other chdb forms are not on disk, or not ours to probe)."""
    parts = urlsplit(dsn)
    return Path(parts.path) if parts.scheme == "chdb" and not parts.netloc and parts.path else None


def refuse_if_held(settings: Settings) -> None:
    """Raise ``StorageLockedError`` when another process runs the embedded engine of ``settings``
    (a second ``loopwatch serve`` on the same data dir): callers say so in one line before starting."""
    dsn, _ = _split_dsn(settings.dsn, settings.clickhouse_database)
    if (path := _chdb_path(dsn)) is not None:
        _refuse_if_held(path)


def _refuse_if_held(path: Path) -> None:
    """Raise ``StorageLockedError`` when another process holds the engine directory ``path``.

    ClickHouse holds an exclusive ``flock`` on ``<path>/status`` while it runs and writes its pid there.
    Probed before connecting, because chDB reports a held lock only as "Error initializing
    EmbeddedServer" (after printing its own message on stderr). This process's own engine holds the
    lock too: the pid tells them apart.
    """
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        match = re.search(rb"PID: (\d+)", os.pread(fd, 256, 0))
        pid = int(match.group(1)) if match else None
        if pid != os.getpid():
            raise StorageLockedError(path, pid) from None
    finally:
        os.close(fd)


def _split_dsn(dsn: str, database: str) -> tuple[str, str]:
    """Return (dsn without database path, database). A server DSN's path names the database."""
    if dsn.startswith("chdb:"):
        return dsn, database
    parts = urlsplit(dsn)
    path_db = parts.path.strip("/")
    return urlunsplit((parts.scheme, parts.netloc, "", parts.query, "")), path_db or database


def chdb_cache_limits(megabytes: int) -> dict[str, int]:
    """Engine start-up options bounding chDB's caches to ``megabytes`` in total.

    ClickHouse sizes its mark and primary-index caches for a server with the machine to itself (5 GiB
    each): in a process that also serves the API, they grew its memory with every stored part. Half
    for the mark cache (every read needs marks), a quarter for the primary index, the rest for
    skip-index marks and the query-condition cache; the uncompressed-block cache stays off (default).
    """
    total = megabytes * 1024 * 1024
    return {
        "mark_cache_size": total // 2,
        "primary_index_cache_size": total // 4,
        "index_mark_cache_size": total // 8,
        "query_condition_cache_size": total // 8,
        "uncompressed_cache_size": 0,
    }


def _close_all(clients: Sequence[Client]) -> None:
    for client in clients:
        try:
            client.close()
        except Exception:
            log.warning("client_close_failed")


class Storage:
    """Thread-safe access to one loopwatch database."""

    def __init__(self, settings: Settings) -> None:
        self._dsn, self.database = _split_dsn(settings.dsn, settings.clickhouse_database)
        if self._dsn.startswith("chdb:"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._retention_days = settings.retention_days
        self._chdb_options = chdb_cache_limits(settings.chdb_cache_mb)
        self._local = threading.local()
        self._clients: dict[threading.Thread, Client] = {}  # for close(); see _keep
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self._dsn.startswith("chdb:")

    def tracked_memory(self) -> int | None:
        """Bytes embedded chDB's memory tracker counts (queries, merges, caches) inside this process, or
        None for a ClickHouse server (its memory is not this process's). The rest of the process's RSS
        is Python and the allocator's retained free pages: the split says which one grows."""
        if not self.embedded:
            return None
        value = self.scalar("SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'")
        return None if value is None else int(value)

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                if self.embedded:
                    if (path := _chdb_path(self._dsn)) is not None:
                        _refuse_if_held(path)
                    client = clickhouse_connect.get_client(dsn=self._dsn, chdb_options=self._chdb_options)
                else:  # one HTTP session per client would serialise concurrent queries
                    client = clickhouse_connect.get_client(dsn=self._dsn, autogenerate_session_id=False)
            except ClickHouseError as exc:
                raise StorageError(f"cannot connect to ClickHouse: {exc}") from exc
            self._local.client = client
            self._keep(client)
        return client

    def _keep(self, client: Client) -> None:
        """Hold this thread's new client for ``close()``, and close those of threads that have ended.

        Each embedded client is an open chDB connection (~1 MiB of engine memory). Callers on short-lived
        threads — prometheus_client's server answers every scrape of a worker's ``/metrics`` on a new
        thread, thread pools retire idle threads — would otherwise leave one behind per thread for the
        life of the process. A thread that ended can no longer use its client, so closing it is safe.
        """
        with self._lock:
            ended = [thread for thread in self._clients if not thread.is_alive()]
            stale = [self._clients.pop(thread) for thread in ended]
            self._clients[threading.current_thread()] = client
        _close_all(stale)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClickHouseError as exc:
            code = getattr(exc, "code", None)  # the server's error code, from chDB and HTTP alike
            if code in DATA_ERROR_CODES and not any(marker in str(exc) for marker in SCHEMA_MISMATCH):
                raise StorageRejectedError(f"{what} failed: {exc}", code) from exc
            raise StorageError(f"{what} failed: {exc}") from exc

    def migrate(self, *, up_to: int | None = None) -> list[int]:
        """Create the database and apply pending migrations (those numbered ``up_to`` at most, if given:
        tests build the schema an older release left); returns the versions applied now."""
        db = self.database
        self.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        with self._migration_lock():
            return self._migrate(up_to)

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One process migrates at a time: API replicas and workers start together, and a migration such
        as 0006 (rebuild and swap a table) must not run twice at once. The lock is a table that only one
        ``CREATE`` can make; a lock older than ``MIGRATION_LOCK_STALE`` belongs to a crashed migrator."""
        db, started = self.database, time.monotonic()
        while True:
            try:
                self.command(f"CREATE TABLE {db}.migration_lock (pid UInt32) ENGINE = Memory")
                break
            except StorageError as exc:
                if "already exists" not in str(exc).lower():
                    raise
            age = self.scalar(
                "SELECT dateDiff('second', metadata_modification_time, now()) FROM system.tables "
                "WHERE database = {db:String} AND name = 'migration_lock'",
                {"db": db},
            )
            if age is not None and age > MIGRATION_LOCK_STALE:
                log.warning("migration_lock_broken", age_seconds=age)
                self.command(f"DROP TABLE IF EXISTS {db}.migration_lock")
                continue
            if time.monotonic() - started > MIGRATION_LOCK_STALE:
                raise StorageError(f"another process has been migrating {db} for over {MIGRATION_LOCK_STALE} s")
            log.info("migration_lock_wait", database=db)
            time.sleep(1.0)
        try:
            yield
        finally:
            self.command(f"DROP TABLE IF EXISTS {db}.migration_lock")

    def _migrate(self, up_to: int | None) -> list[int]:
        db = self.database
        self.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
        )
        done = {row[0] for row in self.query(f"SELECT version FROM {db}.schema_migrations").result_rows}
        applied = []
        for migration in migrations():
            if migration.version in done or (up_to is not None and migration.version > up_to):
                continue
            for statement in migration.render(db):
                self.command(statement)
            self.command(
                f"INSERT INTO {db}.schema_migrations (version, name) VALUES ({migration.version}, %(name)s)",
                {"name": migration.name},
            )
            applied.append(migration.version)
            log.info("migration_applied", version=migration.version, name=migration.name)
        if self._retention_days:
            for table in ("inferences", "feedback"):
                self.command(
                    f"ALTER TABLE {db}.{table} MODIFY TTL toDateTime(timestamp) + "
                    f"INTERVAL {int(self._retention_days)} DAY"
                )
        return applied

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._errors("command"):
            return self._client().command(sql, parameters=None if parameters is None else dict(parameters))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._errors("query"):
            return self._client().query(sql, parameters=None if parameters is None else dict(parameters))

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Query and return rows as dicts keyed by column name."""
        result = self.query(sql, parameters)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def scalar(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        rows = self.query(sql, parameters).result_rows
        return rows[0][0] if rows else None

    def insert_json(self, table: str, rows_json: bytes) -> None:
        """Insert rows given as one JSON array (or JSON lines) of objects named like the columns.

        ClickHouse parses the JSON natively, which is several times faster than building native
        columns in Python.
        """
        if not rows_json or rows_json in (b"[]", b"\n"):
            return
        with self._errors(f"insert into {table}"):
            self._client().raw_insert(
                f"{self.database}.{table}", insert_block=rows_json, fmt="JSONEachRow", settings=_JSON_INSERT_SETTINGS
            )

    def insert_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not rows:
            return
        with self._errors(f"insert into {table}"):
            self._client().insert(
                f"{self.database}.{table}", rows, column_names=list(columns), settings=dict(settings or {})
            )

    def ping(self) -> bool:
        try:
            return self.scalar("SELECT 1") == 1
        except StorageError:
            return False

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        _close_all(clients)
        self._local = threading.local()
