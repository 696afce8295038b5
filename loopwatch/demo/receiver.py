"""A tiny local webhook receiver: what a team's alert endpoint does, in ~100 lines.

It listens on 127.0.0.1 (an ephemeral port), records every POST, checks the
``X-Loopwatch-Signature`` with the shared secret (``streams.delivery.signing.verify``) and answers
200 — or, to show retries, fails the first ``fail_first`` requests with a 503. The demo starts one,
points a monitor's webhook channel at ``url`` and prints what arrived; tests use it the same way::

    with WebhookReceiver(secret="s3cret-s3cret-s3cret") as hook:
        ...  # create a monitor with {"type": "webhook", "url": hook.url, "secret": hook.secret}
        for request in hook.wait_for(1, timeout=10):
            print(request.event_type, request.verified, request.json["metric"])

Loopback targets are refused by loopwatch unless ``LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS=true``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from streams.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify

EVENT_HEADER = "X-Loopwatch-Event"


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST as received; ``verified`` is None when the receiver has no secret to check with."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the receiver answered
    verified: bool | None
    received_at: float = field(default_factory=time.time)  # wall clock, for latency measurements

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_type(self) -> str:
        return self.headers.get(EVENT_HEADER.lower(), "")

    @property
    def idempotency_key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER.lower(), "")

    @property
    def signature(self) -> str:
        return self.headers.get(SIGNATURE_HEADER.lower(), "")


class WebhookReceiver:
    """Records requests on a background thread; ``wait_for`` blocks until enough have arrived."""

    def __init__(self, secret: str | None = None, *, fail_first: int = 0, fail_status: int = 503) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[ReceivedRequest] = []
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}/hooks/loopwatch"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                signature = headers.get(SIGNATURE_HEADER.lower())
                verified = None if receiver.secret is None else verify(receiver.secret, body, signature)
                with receiver._arrived:
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= int(failing)
                    answer = receiver.fail_status if failing else (200 if verified is not False else 401)
                    receiver.requests.append(ReceivedRequest(self.path, headers, body, answer, verified))
                    receiver._arrived.notify_all()
                reply = b'{"ok": true}' if answer == 200 else b'{"ok": false}'
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        return Handler

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The first ``n`` requests, once they arrived; ``TimeoutError`` saying how many did otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"received {len(self.requests)} of {n} requests within {timeout} s")
                self._arrived.wait(left)
            return list(self.requests[:n])

    def wait_for_event(self, event_type: str, timeout: float = 10.0) -> ReceivedRequest:
        """The first request of ``event_type`` (the ``X-Loopwatch-Event`` header: ``alert``, ``retrain``,
        …), once it arrived, whatever arrived before it; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = next((r for r in self.requests if r.event_type == event_type), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {event_type!r} request within {timeout} s ({len(self.requests)} others)")
                self._arrived.wait(left)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
