"""``Retry-After``: one parser (``loopwatch_sdk.retry_after``) for the SDK's HTTP transport and the webhook sender."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loopwatch_sdk._transports import HttpTransport
from loopwatch_sdk.retry_after import retry_after_seconds

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class TestParse:
    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("120", 120.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("-3", 0.0),
            ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
            ("Sun, 01 Mar 2026 12:00:30 -0000", 30.0),
            ("Sun, 01 Mar 2026 13:00:30 +0100", 30.0),
            ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),  # already past
        ],
    )
    def test_delta_seconds_and_http_dates(self, value: str, seconds: float) -> None:
        assert retry_after_seconds(value, now=NOW) == seconds

    @pytest.mark.parametrize(
        "value", [None, "", "   ", "soon", "nan", "Sun, 99 Foo 2026", "Sun, 01 Mar 2026 25:00:00 GMT"]
    )
    def test_absent_or_unreadable_is_none(self, value: str | None) -> None:
        assert retry_after_seconds(value, now=NOW) is None

    def test_capped(self) -> None:
        assert retry_after_seconds("86400", cap=60) == 60
        assert retry_after_seconds("inf", cap=60) == 60
        assert retry_after_seconds("Mon, 01 Jan 2100 00:00:00 GMT", cap=8.0) == 8.0
        assert retry_after_seconds("inf") == math.inf

    def test_default_now_is_the_current_time(self) -> None:
        later = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
        seconds = retry_after_seconds(later)
        assert seconds is not None
        assert 90 < seconds <= 100


class _Busy(BaseHTTPRequestHandler):
    """Answers the first POST with 429 and an HTTP-date ``Retry-After`` two seconds ahead, then 202."""

    arrivals: list[float]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) == 1:
            self.send_response(429)
            when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
            self.send_header("retry-after", format_datetime(when, usegmt=True))  # 2-3 s from now
        else:
            self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[tuple[str, list[float]]]:
    arrivals: list[float] = []
    handler = type("Handler", (_Busy,), {"arrivals": arrivals})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    finally:
        server.shutdown()
        server.server_close()


def test_the_sdk_waits_as_long_as_an_http_date_retry_after_asks(busy_server: tuple[str, list[float]]) -> None:
    """The transport used to read only delta-seconds and retried an HTTP-date 429 after its own short backoff."""
    url, arrivals = busy_server
    results: list[tuple[int, BaseException | None]] = []
    transport = HttpTransport(
        url, "lw_key", lambda count, error: results.append((count, error)), abort=threading.Event(), backoff=0.01
    )
    try:
        transport.send("inference", "p/m", b"[]", 3)
    finally:
        transport.close(1.0)
    assert results == [(3, None)]
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.5  # the date is 2-3 s ahead when sent; the backoff alone is 0.01 s
