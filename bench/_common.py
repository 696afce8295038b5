"""Helpers shared by the benchmark scripts (not a benchmark itself).

Every script puts the repository root on ``sys.path`` (so ``python bench/X.py`` works from anywhere)
and uses these for statistics, CPU accounting and the rich output.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(highlight=False)
if not console.is_terminal:  # logs and CI: wide enough that the tables do not wrap
    console = Console(highlight=False, width=140)
_TICK = os.sysconf("SC_CLK_TCK")


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_runs(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    return " / ".join(fmt.format(v) for v in values)


def process_cpu_seconds() -> float:
    """User + system CPU of this process (all threads), excluding children."""
    times = os.times()
    return times.user + times.system


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread *name* of this process (digits folded: asyncio_0..n → asyncio_#).

    Python threads are named by their ``threading`` name, native threads (chDB's) by their kernel name.
    """
    import threading

    python_names = {thread.native_id: thread.name for thread in threading.enumerate()}
    out: dict[str, float] = defaultdict(float)
    base = Path("/proc/self/task")
    for task in base.iterdir():
        try:
            name = python_names.get(int(task.name)) or (task / "comm").read_text().strip()
            name = re.sub(r" \(.*\)$", "", name)  # "Thread-3 (run)" → "Thread-3"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after "comm)": state is fields[0]; utime/stime are stat fields 14/15 → index 11/12 here
        out[re.sub(r"\d+", "#", name)] += (int(fields[11]) + int(fields[12])) / _TICK
    return dict(out)


def thread_cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU per thread name between two snapshots (threads that ended in between are lost: approximate)."""
    return {name: after[name] - before.get(name, 0.0) for name in after if after[name] - before.get(name, 0.0) > 0.005}


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def verdict(ok: bool) -> str:
    return "[bold green]met[/bold green]" if ok else "[bold red]NOT met[/bold red]"
