"""A process whose start-up fails late, for ``test_runtime_start``: ``python -m tests.streams.start_fails_child
<worker|up>``.

chDB keeps one engine per process, so the storage's release is only visible from another process: this
one starts the runtime from the ``LOOPWATCH_*`` environment (the parent makes a late step fail), prints
what is still running once ``start_runtime`` has raised (as JSON: the error, asyncio tasks, non-daemon
threads), then waits for a line on stdin so the parent can probe the data directory's lock, and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

from loopwatch._logs import configure_logging
from schemas.settings import Settings
from streams.runtime import start_runtime

SETTLE_SECONDS = 10.0  # threads that are ending anyway get this long before they count as left over


def _non_daemon_threads(before: set[int]) -> list[str]:
    """Threads that would keep the process from exiting; the loop's default executor (``asyncio_N``,
    idle ``to_thread`` workers) is left out: ``asyncio.run`` shuts it down on its way out."""
    return sorted(
        thread.name
        for thread in threading.enumerate()
        if not thread.daemon
        and thread.ident not in before
        and thread is not threading.main_thread()
        and not thread.name.startswith("asyncio_")
    )


async def main(mode: str) -> None:
    settings = Settings()
    configure_logging(settings)
    before = {thread.ident for thread in threading.enumerate() if thread.ident is not None}
    try:
        await start_runtime(settings, serve_api=mode == "up", with_worker=mode == "up")
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = "started"
    deadline = time.monotonic() + SETTLE_SECONDS
    while (_non_daemon_threads(before) or len(asyncio.all_tasks()) > 1) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    tasks = sorted(task.get_name() for task in asyncio.all_tasks() if task is not asyncio.current_task())
    print(json.dumps({"error": error, "tasks": tasks, "threads": _non_daemon_threads(before)}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the parent probes the data directory's lock meanwhile


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
