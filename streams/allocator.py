"""glibc ``malloc`` tuned for a process that hosts embedded chDB next to Python.

chDB is not linked with jemalloc (its ``mallctl`` symbols are weak and unresolved), so ClickHouse's
insert, merge and query buffers come from glibc ``malloc``, as do Python's. With glibc's defaults a
long-running ``serve`` held ever more free memory: up to 8 arenas per core for chDB's dozens of
threads, and a mmap threshold that grows (up to 32 MiB) after each large block is freed, so later
large blocks are carved out of the arenas and leave holes behind. Measured over 3M ingested events
(``bench/memory.py``), arena free space grew 29 → 141 MiB while the memory in use stayed at ~80 MiB;
with the values below the arenas stayed at ~78 MiB (13 MiB free) and RSS stopped climbing.

Preloading jemalloc is not an option: chDB then aborts on its first query ("free(): invalid
pointer"). Call ``tune_malloc`` before chDB is imported and before threads start. Measured on 2 cores
only: on a many-core host more arenas may serve better; ``MALLOC_ARENA_MAX`` set by the operator wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import structlog

log = structlog.get_logger(__name__)

# mallopt(3) parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENAS = 2  # for all of chDB's threads: fewer partly-free arenas, little contention on 2 cores
MMAP_THRESHOLD = 256 * 1024  # fixed: blocks this large are mmap-ed and returned to the OS when freed
TRIM_THRESHOLD = 1024 * 1024  # free memory above this at the top of an arena goes back to the OS


def tune_malloc() -> bool:
    """Apply the values above with ``mallopt``; returns False where the C library is not glibc or a value
    was refused. An arena count the operator set (``MALLOC_ARENA_MAX``) is kept."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    wanted = [(_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    if "MALLOC_ARENA_MAX" not in os.environ:
        wanted.append((_M_ARENA_MAX, ARENAS))
    refused = [parameter for parameter, value in wanted if libc.mallopt(parameter, value) != 1]  # each applied
    log.debug("malloc_tuned", refused=refused, arenas=ARENAS, mmap_threshold=MMAP_THRESHOLD)
    return not refused
