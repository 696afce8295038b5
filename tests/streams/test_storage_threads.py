"""Storage keeps one engine connection per *live* thread, not one per thread it has ever served.

A ``loopwatch worker`` serves ``/metrics`` with prometheus_client's server, which answers every scrape on
a new thread, and the ``loopwatch_storage_memory_bytes`` gauge queries chDB from that thread. With a
connection kept for every thread ever seen, each scrape left an open chDB connection behind (~1 MiB of
the engine's memory): the worker's RSS climbed ~170 MiB per million events under ``bench/memory.py``'s
scrapes, and a Prometheus scraping every 15 s would add ~5,000 connections a day.
"""

from __future__ import annotations

import threading

import httpx

from loopwatch._server import free_port
from streams import metrics
from streams.storage import Storage


def test_scrapes_on_new_threads_do_not_pile_up_engine_memory(storage: Storage) -> None:
    metrics.watch_storage(storage, Storage.tracked_memory)
    port = free_port()
    stop = metrics.serve("127.0.0.1", port)
    assert stop is not None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert "loopwatch_storage_memory_bytes" in client.get("/metrics").text
            before = storage.tracked_memory()
            for _ in range(100):
                assert client.get("/metrics").status_code == 200
            after = storage.tracked_memory()
    finally:
        stop()
    assert before is not None
    assert after is not None
    assert after - before < 30 * 2**20, f"engine memory grew {(after - before) / 2**20:.0f} MiB over 100 scrapes"


def test_a_thread_that_ended_leaves_no_client_behind(storage: Storage) -> None:
    def query() -> None:
        assert storage.scalar("SELECT 1") == 1

    for _ in range(20):
        thread = threading.Thread(target=query)
        thread.start()
        thread.join()
    query()  # this thread's client, made after the others had ended
    assert len(storage._clients) <= 2  # this thread's, and at most the last ended thread's (closed on the next)
