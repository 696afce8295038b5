"""The one way tests wait: poll a condition until it holds, with a deadline that only guards against a hang.

Tests never assert on how long something took, and never sleep and then check that nothing happened:
they wait for a positive signal with ``wait_until`` (in async code: ``await asyncio.to_thread(wait_until, …)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], what: str, timeout: float = 60.0, interval: float = 0.05) -> T:
    """Poll ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    ``timeout`` only guards against a hang (``AssertionError`` naming ``what``); a predicate may raise to
    stop early (a child process that died will never become ready).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
