"""A real HTTP receiver on loopback that records requests and answers from a per-test script.

Delivery is tested against a real socket rather than a mocked transport so retries, timeouts, headers
and signatures are exercised exactly as a receiver sees them.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TLS_NAME = "hooks.example.test"  # the only name the HTTPS receiver's test certificate is valid for


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it; ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float


class Receiver:
    """Records every request; answers from ``script`` first, then with ``default``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.tls_server_names: list[str | None] = []  # SNI of each TLS handshake
        self.script: list[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()
        handler = self._handler_class()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.tls_server_names.append(name)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        # A short poll interval keeps shutdown (once per test) from costing the default 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}/hooks/loopwatch"

    def fail_first(self, k: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        self.script = [Reply(status=status, headers=headers or {}, body=b"nope") for _ in range(k)]

    def always(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.default = Reply(status=status, headers=headers or {}, body=b"nope")

    def _next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received = Received(
                    method="POST",
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = receiver._next_reply(received)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test); nothing to answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
