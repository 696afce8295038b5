"""A ClickHouse HTTP interface over chDB, for multi-process tests only (never used by loopwatch).

Production runs a ClickHouse server or cluster. No server can be installed on the test machines, but
chDB is the same engine in a library; and since chDB opens a data directory in one process only,
this one process owns the engine and serves ClickHouse's HTTP protocol to any number of API and
worker processes (``LOOPWATCH_CLICKHOUSE_DSN=http://127.0.0.1:PORT/loopwatch``), so they talk to it
through clickhouse-connect's real HTTP client, exactly as they would to a server.

What clickhouse-connect sends and reads is covered: the statement in ``?query=`` and/or the body
(for ``INSERT … FORMAT x`` the body is the data, possibly ``Content-Encoding``-compressed, possibly
chunked); ``database``; ``query_id``; ``param_*`` bind parameters; any other URL parameter is a
setting (transport ones such as ``session_id``, ``compress``, ``wait_end_of_query`` are accepted and
ignored: every request stands alone, and a response is always sent whole); the output format from a
trailing ``FORMAT`` (chDB renders Native, RowBinaryWithNamesAndTypes, Arrow, JSON… itself); responses
compressed when ``enable_http_compression=1`` and ``Accept-Encoding`` names a supported codec;
``X-ClickHouse-Query-Id``, ``-Format``, ``-Timezone``, ``-Summary`` headers; errors as ClickHouse
sends them (``Code: N. DB::Exception: …`` body, ``X-ClickHouse-Exception-Code``, 4xx/5xx status).

Run: ``python -m tests.ch_endpoint --path DIR [--port N]`` (prints ``listening on PORT``), or
``ChEndpoint(path)`` as a context manager in a test process that has not opened chDB itself.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
from clickhouse_connect.driver.compression import _require_lz4, _zstd_decompress

TRANSPORT = frozenset(
    {
        "database",
        "query",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "wait_end_of_query",
        "buffer_size",
        "client_protocol_version",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "default_format",
        "user",
        "password",
        "quota_key",
        "role",
    }
)
# ClickHouse's HTTP status per error code (the ones a client can meet here); anything else is 500.
STATUS = {62: 400, 27: 400, 36: 400, 43: 400, 47: 400, 53: 400, 115: 400, 117: 400, 60: 404, 81: 404, 57: 400}
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"Code: (\d+)")
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT_HEAD = re.compile(rb"\s*(INSERT\b(?:(?!\bVALUES\b).)*?\bFORMAT\s+\w+)[ \t]*\r?\n?", re.IGNORECASE | re.DOTALL)
_READS = ("SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "(")


def _decompress(data: bytes, encoding: str) -> bytes:
    codecs: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.decompress,
        "deflate": zlib.decompress,
        "zstd": _zstd_decompress,
        "lz4": lambda raw: _require_lz4().decompress(raw),
    }
    if encoding not in codecs:
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return codecs[encoding](data)


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=1)
    if encoding == "deflate":
        return zlib.compress(data, 1)
    if encoding == "lz4":
        return _require_lz4().compress(data)
    import zstandard

    return zstandard.ZstdCompressor(level=1).compress(data)


def _accepted(header: str) -> str | None:
    """The first codec of ``Accept-Encoding`` this endpoint can produce."""
    supported = ["lz4", "gzip", "deflate"]
    try:
        import zstandard  # noqa: F401

        supported.append("zstd")
    except ImportError:
        pass
    for item in header.split(","):
        name = item.split(";")[0].strip().lower()
        if name in supported:
            return name
    return None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settings_clause(settings: dict[str, str]) -> str:
    for name in settings:
        if not _SETTING.match(name):
            raise ClickHouseHTTPError(115, f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)")
    return ", ".join(f"{name} = {_quote(value)}" for name, value in settings.items())


class ClickHouseHTTPError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Engine:
    """The chDB engine behind a small pool of connections (one statement per connection at a time)."""

    def __init__(self, path: Path, connections: int = 4) -> None:
        self._pool: queue.Queue[Any] = queue.Queue()
        for _ in range(connections):
            self._pool.put(chdb.connect(os.path.realpath(path)))
        with self._connection() as conn:
            self.timezone = conn.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()
            self.version = conn.query("SELECT version()", "TabSeparated").bytes().decode().strip()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    def run(
        self, sql: str, data: bytes | None, database: str | None, params: dict[str, str], settings: dict[str, str]
    ) -> tuple[bytes, str, dict[str, str]]:
        """Execute one statement; returns (body, format, summary). Raises ClickHouseHTTPError."""
        sql = sql.strip().rstrip(";")
        match = _FORMAT.search(sql)
        fmt = match[1] if match else "TabSeparated"
        head = sql[: match.start()].rstrip() if match else sql
        is_insert = head[:6].upper() == "INSERT"
        with self._connection() as conn:
            try:
                if database:
                    conn.query(f"USE {database}", "TabSeparated")
                if is_insert and data:  # INSERT … FORMAT x with the rows in the body
                    with tempfile.NamedTemporaryFile(prefix="ch-endpoint-", suffix=".data") as tmp:
                        tmp.write(data)
                        tmp.flush()
                        clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
                        result = conn.query(
                            f"{head} FROM INFILE {_quote(tmp.name)}{clause} FORMAT {fmt}", "TabSeparated"
                        )
                    return (
                        b"",
                        fmt,
                        {"written_rows": str(result.rows_read()), "written_bytes": str(result.bytes_read())},
                    )
                if settings and head.lstrip("( ").upper().startswith(_READS):
                    head, settings = f"{head}\nSETTINGS {_settings_clause(settings)}", {}
                for name, value in settings.items():  # statements that take no SETTINGS clause
                    conn.query(f"SET {_settings_clause({name: value})}", "TabSeparated")
                try:
                    result = conn.query(head, fmt, params=params)
                finally:
                    for name in settings:
                        conn.query(f"SET {name} = DEFAULT", "TabSeparated")
            except RuntimeError as exc:
                message = str(exc)
                message = message[message.find("Code: ") :] if "Code: " in message else message
                code = _CODE.search(message)
                raise ClickHouseHTTPError(int(code[1]) if code else 1002, message.strip()) from None
        body = result.bytes() or b""
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "result_rows": str(result.rows_read()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return body, fmt, summary


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools connections

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = _read_body(self)
            if url.path in ("/ping", "/") and not url.query and not body:
                self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                return
            args = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = args.get("query_id") or str(uuid.uuid4())
            headers = {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": engine.timezone,
                "X-ClickHouse-Server-Display-Name": "chdb-endpoint",
            }
            try:
                if encoding := self.headers.get("Content-Encoding"):
                    body = _decompress(body, encoding.lower())
                query = args.get("query", "")
                data: bytes | None = None
                if query and body:
                    if query.lstrip().upper().startswith("INSERT"):
                        data = body
                    else:
                        query = f"{query}\n{body.decode()}"
                elif head := _INSERT_HEAD.match(body):  # "INSERT … FORMAT x\n" then the rows
                    query, data = head[1].decode(), body[head.end() :]
                elif body:
                    query = body.decode()
                if not query.strip():
                    raise ClickHouseHTTPError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
                params = {name[6:]: value for name, value in args.items() if name.startswith("param_")}
                settings = {n: v for n, v in args.items() if n not in TRANSPORT and not n.startswith("param_")}
                out, fmt, summary = engine.run(query, data, args.get("database"), params, settings)
            except ClickHouseHTTPError as exc:
                text = f"{exc} (version {engine.version} (chdb endpoint))\n".encode()
                headers |= {"X-ClickHouse-Exception-Code": str(exc.code), "Content-Type": "text/plain; charset=UTF-8"}
                self._send(STATUS.get(exc.code, 500), text, headers)
                return
            except (ValueError, UnicodeDecodeError) as exc:
                text = f"Code: 27. DB::Exception: Cannot parse request: {exc}. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)\n"
                self._send(400, text.encode(), headers | {"X-ClickHouse-Exception-Code": "27"})
                return
            headers |= {
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Summary": json.dumps(summary),
                "Content-Type": "application/octet-stream",
            }
            accepted = _accepted(self.headers.get("Accept-Encoding", ""))
            if args.get("enable_http_compression") == "1" and accepted and out:
                out = _compress(out, accepted)
                headers["Content-Encoding"] = accepted
            self._send(200, out, headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


class ChEndpoint:
    """The endpoint on 127.0.0.1 in a background thread of this process (which then owns chDB)."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.engine = Engine(path)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.engine))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="ch-endpoint", daemon=True)

    def __enter__(self) -> ChEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    args.path.mkdir(parents=True, exist_ok=True)
    endpoint = ChEndpoint(args.path, args.port)
    print(f"listening on {endpoint.port}", flush=True)
    endpoint.server.serve_forever()


if __name__ == "__main__":
    main()


class EndpointProcess:
    """``python -m tests.ch_endpoint`` in a process of its own (a test process may hold another chDB)."""

    def __init__(self, path: Path) -> None:
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(  # noqa: S603 - this module
            [sys.executable, "-m", "tests.ch_endpoint", "--path", str(path)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"the ClickHouse endpoint did not start: {line!r}")
        self.port = int(line.split()[-1])
        self.url = f"http://127.0.0.1:{self.port}"

    def dsn(self, database: str = "loopwatch") -> str:
        return f"{self.url}/{database}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(30)

    def __enter__(self) -> EndpointProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
