"""Benchmark: a dataset snapshot of 1,000,000 feedback rows (``/v1/datasets``) side by side with the plain
streamed export of the same rows (``/v1/feedback/export?format=jsonl``).

What is measured
    The tables are filled with ``bench/feedback_query.py``'s generators (``--rows`` feedback rows on as
    many calls, default 1M each, one project in two: the snapshot selects one project, so ~500k rows;
    ``--rows 2000000`` for a full million). Then, in this process, one after the other:

    * export: every matching item through the export's own code (``iter_feedback`` pages joined to
      their calls, encoded as the ``jsonl`` export does), bytes counted and dropped;
    * snapshot: ``streams.datasets.snapshot`` in ``jsonl`` (the ``INSERT … SELECT`` copy, then one
      render to hash and count the bytes, then the commit);
    * download: ``streams.datasets.render`` of that version, bytes hashed (what a download streams).

    Each reports wall time, rows, bytes and the peak resident memory of this process while it ran
    above the resident memory just before it (sampled every 20 ms from ``/proc/self/status``, chDB's
    memory included: it runs inside this process).

Run from the repository root::

    .venv/bin/python bench/datasets.py                # 1M calls, 1M feedback (~500k in the snapshot)
    .venv/bin/python bench/datasets.py --rows 2000000  # a 1M-row snapshot
    .venv/bin/python bench/datasets.py --quick        # smoke: 100k
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import _common  # noqa: F401 - puts the repository root on sys.path
import orjson
from _common import console
from feedback_query import feedback_sql, inference_sql
from rich.table import Table

from api.queries.feedback import FeedbackFilter, iter_feedback
from loopwatch._logs import configure_logging
from schemas.settings import Settings
from streams.datasets import render, snapshot
from streams.storage import Storage
from streams.storage.datasets import DatasetQuery, DatasetStore

CHUNK = 500_000
PROJECT = "shop"


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Run:
    name: str
    seconds: float
    rows: int
    size: int
    peak_extra: int


def measured(name: str, work: Callable[[], tuple[int, int]]) -> Run:
    """Run ``work`` (returns rows, bytes) while a thread samples RSS; the peak above the start."""
    before, peak, stop = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        rows, size = work()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    return Run(name, seconds, rows, size, max(peak[0], rss_bytes()) - before)


def load(storage: Storage, rows: int) -> None:
    db = storage.database
    t0_ms = int(time.time() * 1000) - 30 * 86_400_000
    for start in range(0, rows, CHUNK):
        storage.command(inference_sql(db, start, min(CHUNK, rows - start), rows, t0_ms))
    for start in range(0, rows, CHUNK):
        storage.command(feedback_sql(db, start, min(CHUNK, rows - start), rows, t0_ms))
    storage.command(f"OPTIMIZE TABLE {db}.feedback FINAL")
    storage.command(f"OPTIMIZE TABLE {db}.inferences FINAL")


def export(storage: Storage) -> tuple[int, int]:
    rows = size = 0
    for item in iter_feedback(storage, FeedbackFilter(project=PROJECT)):
        size += len(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z))
        rows += 1
    return rows, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls and feedback rows to store")
    parser.add_argument("--quick", action="store_true", help="100k rows")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    workdir = Path(tempfile.mkdtemp(prefix="lw-bench-datasets-"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=workdir,
        clickhouse_database=f"b_{uuid.uuid4().hex[:8]}",
        log_level="warning",
    )
    configure_logging(settings)
    storage = Storage(settings)
    try:
        storage.migrate()
        console.print(f"loading {rows:,} calls and {rows:,} feedback rows (not timed)…")
        load(storage, rows)
        store = DatasetStore(storage)
        runs = [measured("export (jsonl, /v1/feedback/export)", lambda: export(storage))]
        made: list[object] = []

        def make() -> tuple[int, int]:
            version = snapshot(store, PROJECT, "bench", DatasetQuery(), "jsonl")
            made.append(version)
            return version.row_count, version.byte_count

        runs.append(measured("snapshot (copy + hash + commit)", make))
        version = made[0]

        def download() -> tuple[int, int]:
            digest, size = hashlib.sha256(), 0
            chunks: Iterator[bytes] = render(store, version)  # type: ignore[arg-type]
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
            assert digest.hexdigest() == version.sha256  # type: ignore[attr-defined]
            return version.row_count, size  # type: ignore[attr-defined]

        runs.append(measured("download of the version (render)", download))
        table = Table("step", "seconds", "rows", "MB", "rows/s", "peak RSS above start (MB)")
        for run in runs:
            table.add_row(
                run.name,
                f"{run.seconds:.1f}",
                f"{run.rows:,}",
                f"{run.size / 1e6:,.0f}",
                f"{run.rows / run.seconds:,.0f}",
                f"{run.peak_extra / 1e6:,.0f}",
            )
        console.print(table)
        console.print(f"process RSS at the end: {rss_bytes() / 1e6:,.0f} MB")
    finally:
        storage.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
