"""Per-entity (``group_by``) monitor cost: time per window and peak memory, with 100k and 1M distinct
users, side by side with the same windows judged without ``group_by``.

Each configuration has its own embedded chDB: one child process loads ``--windows``
five-minute windows of ``--events-per-user`` events for each of N users (three of whom spend $30, the
rest $0.02; loaded with ``INSERT … SELECT FROM numbers()``) and the monitor; a fresh child process
opens the same data, resets its peak-RSS mark (``/proc/self/clear_refs``) and evaluates each window
with the monitor: ``cost_usd > 20`` per
``user_id`` (``group_by``) or on the model total (baseline: the monitor judges the window's stored
statistic). Printed: seconds per window (median), peak RSS during evaluation (VmHWM) and RSS before
it. Every group_by window's alert is checked to name exactly the three spenders before any figure is
printed.

Target: memory does not grow with distinct users (1M within 20 % of 100k: beyond
``LOOPWATCH_ENTITY_PASS_SIZE`` distinct values the aggregation runs in passes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import REPO, console, median, verdict
from rich.table import Table

SPENDERS = (17, 4242, 99_999)
WINDOW = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def _status(name: str) -> int:
    """A /proc/self/status figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def child(
    phase: str, data_dir: Path, users: int, per_user: int, windows: int, group_by: bool, pass_size: int
) -> dict[str, float]:
    """``load``: the events and the monitor; ``measure`` (a fresh process on the same data): evaluate."""
    from schemas.monitors import MonitorCreate
    from schemas.settings import Settings
    from schemas.stats import StatRow
    from streams.monitors import Monitoring
    from streams.storage import Storage

    settings = Settings(
        _env_file=None, data_dir=data_dir, log_level="error", default_monitors=False, entity_pass_size=pass_size
    )
    storage = Storage(settings)
    if phase == "load":
        storage.migrate()
        db = storage.database
        spenders = ", ".join(str(s % users) for s in SPENDERS)
        for w in range(windows):
            start = (T0 + w * WINDOW).strftime("%Y-%m-%d %H:%M:%S")
            storage.command(
                f"INSERT INTO {db}.inferences "
                "(project, event_id, model, timestamp, status, latency_ms, cost_usd, tags) "
                f"SELECT 'bench', concat('e{w}-', toString(number)), 'm1', "
                f"toDateTime64('{start}', 3, 'UTC') + toIntervalMillisecond(number % 299000), 'ok', "
                f"100 + number % 900, if(number % {users} IN ({spenders}), 30 / {per_user}, 0.01), "
                f"map('user_id', concat('u', toString(number % {users}))) FROM numbers({users * per_user})"
            )
        spec: dict[str, object] = {
            "monitor_id": "spend",
            "name": "spend",
            "family": "cost",
            "metric": "cost_usd",
            "cooldown_seconds": 0,
            "condition": {"type": "threshold", "operator": "gt", "value": 20},
        }
        if group_by:
            spec["group_by"] = "user_id"
        Monitoring(storage, settings, sweep_seconds=None).store.create("bench", MonitorCreate.model_validate(spec))
        storage.close()
        return {}
    monitoring = Monitoring(storage, settings, sweep_seconds=None)
    monitoring.store.active("bench")  # the monitor cached, the engine's tables opened
    total = 3 * 30 + (users - 3) * per_user * 0.01
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    seconds = []
    for w in range(windows):
        start = T0 + w * WINDOW
        row = StatRow("bench", "m1", start, start + WINDOW, "cost", "cost_usd", total, sample_size=users * per_user)
        began = time.perf_counter()
        result = monitoring.evaluate([row])
        seconds.append(time.perf_counter() - began)
        if group_by:
            named = sorted(result.alerts[0].entities) if result.alerts else []
            expected = sorted(f"user_id=u{s % users}" for s in SPENDERS)
            assert named == expected, (named, expected)
    peak = _status("VmHWM")
    storage.close()
    return {"seconds": median(seconds), "peak": peak, "before": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--events-per-user", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10k and 100k users")
    parser.add_argument("--pass-size", type=int, default=100_000, help="LOOPWATCH_ENTITY_PASS_SIZE")
    parser.add_argument("--group-by-only", action="store_true", help="skip the runs without group_by")
    parser.add_argument("--child", nargs=4, metavar=("PHASE", "DIR", "USERS", "GROUP_BY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, data_dir, users, group_by = args.child
        figures = child(
            phase, Path(data_dir), int(users), args.events_per_user, args.windows, group_by == "yes", args.pass_size
        )
        print(json.dumps(figures))
        return
    small, large = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    runs = [(small, True), (large, True), *([] if args.group_by_only else [(small, False), (large, False)])]
    results = {}
    for users, group_by in runs:
        console.print(f"{users:,} users, group_by={'user_id' if group_by else 'none'} …")
        with tempfile.TemporaryDirectory() as tmp:
            for phase in ("load", "measure"):
                done = subprocess.run(  # noqa: S603 - this script
                    [
                        sys.executable,
                        __file__,
                        "--windows",
                        str(args.windows),
                        "--events-per-user",
                        str(args.events_per_user),
                        "--pass-size",
                        str(args.pass_size),
                        "--child",
                        phase,
                        tmp,
                        str(users),
                        "yes" if group_by else "no",
                    ],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    check=True,
                )
        results[(users, group_by)] = json.loads(done.stdout.strip().splitlines()[-1])
    title = (
        f"group_by monitor, {args.events_per_user} events per user, {args.windows} windows, "
        f"{args.pass_size:,} entities per pass"
    )
    table = Table(title=title)
    for column in ("users", "monitor", "s / window", "RSS before (MB)", "peak RSS (MB)", "peak − before (MB)"):
        table.add_column(column, justify="right")
    for (users, group_by), r in results.items():
        table.add_row(
            f"{users:,}",
            "cost_usd > 20 per user_id" if group_by else "cost_usd > 20 (model total)",
            f"{r['seconds']:.3f}",
            f"{r['before'] / 2**20:,.0f}",
            f"{r['peak'] / 2**20:,.0f}",
            f"{(r['peak'] - r['before']) / 2**20:,.1f}",
        )
    console.print(table)
    growth = results[(large, True)]["peak"] / results[(small, True)]["peak"]
    console.print(f"peak RSS with group_by, {large:,} vs {small:,} users: ×{growth:.2f} {verdict(growth <= 1.2)}")


if __name__ == "__main__":
    main()
