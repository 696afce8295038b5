"""Decoding and mapping large trace exports in a helper process, off the API's event loop.

Reading OTLP protobuf through upb's Python objects costs ~15-20 µs of CPU per GenAI span, against
~3 µs for the JSON fast path, and all of it would run on the thread that also serves every other
request of the process. So an export of ``min_bytes`` or more is decoded and mapped in a helper
process, which sends the records back as the JSON array the Kafka envelopes and ``/v1/inferences``
use; the API then takes them through the same msgspec fast path as ``/v1/inferences``
(``schemas.records.InferenceDecoder``): the event loop does for an OTLP span what it does for a JSON
event, and the other core does the OTLP-specific work.

Small exports (an SDK's ``BatchSpanProcessor`` sends a few spans every few seconds) are mapped inline:
a round trip to the helper would cost more than it saves. One helper process serves the whole API
process (it is stateless: bytes in, records out), started with ``spawn`` on the first large export
and stopped at interpreter exit. If it dies, the export is mapped inline and the next one starts a
new helper, so a crash there can only cost time, never an export.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from schemas.records import InferenceDecoder, InferenceRecord, encode_records
from streams.otlp.decode import Encoding, decode_traces
from streams.otlp.mapping import Mapped, map_traces

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_decoder = InferenceDecoder()


def _executor() -> ProcessPoolExecutor:
    global _pool  # one helper per API process, whatever the number of apps in it
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def map_traces_body(body: bytes, encoding: Encoding, project: str) -> Mapped[InferenceRecord]:
    """Decode and map an export in this process (``UndecodableBody`` if it cannot be read)."""
    return map_traces(decode_traces(body, encoding), project)


def _in_helper(body: bytes, encoding: Encoding, project: str) -> tuple[bytes, int, int, list[str]]:
    """The helper's job: the records as one JSON array, and the counts for ``partial_success``."""
    mapped = map_traces_body(body, encoding, project)
    payload = encode_records(mapped.records) if mapped.records else b""
    return payload, mapped.rejected, mapped.ignored, mapped.problems


async def map_traces_offloaded(
    body: bytes, encoding: Encoding, project: str, min_bytes: int
) -> Mapped[InferenceRecord]:
    """``map_traces_body``, in the helper process when the body is at least ``min_bytes`` (0 = never)."""
    if not min_bytes or len(body) < min_bytes:
        return map_traces_body(body, encoding, project)
    pool = _executor()
    try:
        payload, rejected, ignored, problems = await asyncio.get_running_loop().run_in_executor(
            pool, _in_helper, body, encoding, project
        )
    except BrokenProcessPool:
        log.warning("otlp.helper_lost", bytes=len(body))
        _discard(pool)
        return map_traces_body(body, encoding, project)
    records = _decoder.decode(payload) if payload else []
    if records is None:  # cannot happen: the helper's records passed the same structs
        raise RuntimeError("records from the OTLP helper failed validation")
    return Mapped(records=records, rejected=rejected, ignored=ignored, problems=problems)


def helper_cpu_seconds() -> float:
    """User + system CPU the helper process has used so far (0 when none runs): benchmarks add it to
    the API process's own, which ``os.times`` reports without live children."""
    pool = _pool
    pids = list(pool._processes or ()) if pool is not None else []  # the executor has no public accessor
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
