"""``tune_malloc`` really changes where glibc puts large blocks (checked in a fresh interpreter each)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Free a 4 MiB block (glibc's default then raises its mmap threshold above 4 MiB), allocate 1 MiB and
# print how many bytes are mmap-ed: with the default threshold the 1 MiB block comes from the heap.
PROBE = """
import ctypes, sys
from streams.allocator import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(4 << 20))
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd)
"""


def _mmapped_bytes(mode: str) -> int:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_tuned_malloc_maps_large_blocks_instead_of_carving_the_heap() -> None:
    assert _mmapped_bytes("default") < 1 << 20  # glibc's dynamic threshold: the block sits in the heap
    assert _mmapped_bytes("tuned") >= 1 << 20  # fixed 256 KiB threshold: mapped, returned on free
