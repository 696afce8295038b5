"""A real HTTP server on 127.0.0.1 that speaks OpenAI chat completions as a deterministic judge.

The score is a function of the rendered prompt: a prompt containing ``BAD`` scores 0.1, any other 0.9
(booleans: ``BAD`` → true). ``failures`` makes the next N requests fail in the way ``mode`` says:

* ``429``: HTTP 429 with ``Retry-After`` (``retry_after`` seconds);
* ``500``: HTTP 500;
* ``slow``: answer after ``delay`` seconds (longer than the evaluator's timeout → a timeout);
* ``invalid_json``: a 200 whose message is not JSON;
* ``off_schema``: a 200 whose JSON has a score outside the range.

With ``failures`` = -1 the mode applies to every request. Every request is recorded (headers and body),
and ``spans`` keeps when each was received and answered (``time.monotonic``), to count how many were
in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class JudgeServer:
    mode: str = "ok"
    failures: int = 0
    retry_after: str = "0.05"
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail(self, mode: str, count: int) -> None:
        with self._lock:
            self.mode, self.failures = mode, count

    def start(self) -> JudgeServer:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a client's pool reuses its connections

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                received = time.monotonic()
                try:
                    self._answer()
                finally:
                    with judge._lock:
                        judge.spans.append((received, time.monotonic()))

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with judge._lock:
                    judge.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    failing = judge.failures != 0
                    if judge.failures > 0:
                        judge.failures -= 1
                    mode = judge.mode if failing else "ok"
                if mode == "429":
                    self._send(429, {"error": "rate limited"}, {"Retry-After": judge.retry_after})
                    return
                if mode == "500":
                    self._send(500, {"error": "boom"})
                    return
                if mode == "slow":
                    time.sleep(judge.delay)
                prompt = body["messages"][-1]["content"]
                bad = "BAD" in prompt
                properties = body["response_format"]["json_schema"]["schema"]["properties"]
                if "verdict" in properties:
                    answer: dict[str, Any] = {"explanation": "looks bad" if bad else "looks fine", "verdict": bad}
                elif "label" in properties:
                    labels = properties["label"]["enum"]
                    answer = {"explanation": "picked", "label": labels[0] if bad else labels[-1]}
                else:
                    answer = {"explanation": "weak answer" if bad else "good answer", "score": 0.1 if bad else 0.9}
                content = json.dumps(answer)
                if mode == "invalid_json":
                    content = "I think the answer is fine, score nine out of ten"
                if mode == "off_schema":
                    content = json.dumps({"explanation": "x", "score": 42})
                reply = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }
                self._send(200, reply)

            def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # many judge requests in flight connect at once

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def most_at_once(self, start: float, end: float) -> int:
        """The most requests in flight at one moment between ``start`` and ``end`` (monotonic)."""
        with self._lock:
            spans = [(max(a, start), min(b, end)) for a, b in self.spans if a < end and b > start]
        moments = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
        most = current = 0
        for _, step in moments:
            current += step
            most = max(most, current)
        return most

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
