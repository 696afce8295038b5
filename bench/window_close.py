"""Benchmark: how fast window statistics close, and whether that depends on how much else is stored.

What is measured
    A fresh chDB store per size gets ``--stored`` "other" rows (default 0, 1M and 10M: the same
    project and models, random event ids, spread over the 30 days before; generated inside ClickHouse
    with ``numbers()``), then
    the measured traffic: ``--models`` models x ``--windows`` windows of 60 s with ~``--per-window``
    LLM events each (prompt, response, two features, tags, tokens, latency) and thumbs feedback for a
    third of them. The windows are handed to a ``StatsEngine`` (``tracker.reopen``) and closed with
    ``force_close_all()``: every family (latency, cost, drift against the first window's reference,
    quality), stored in ``window_stats``. The figure is windows closed per second, wall time.

    Baseline, side by side in the same run: the same script run on another checkout of loopwatch
    (``--baseline-tree DIR``, e.g. ``git worktree add /tmp/lw-before cb768b4``), in a subprocess, on
    the same sizes and data: today's code vs the code before this change. Only public interfaces that
    both trees have are used (``Storage.migrate``, ``insert_json``, ``StatsEngine``).

Targets (issue "window statistics at scale"): >= 10 windows/s, and the figure at 10M stored rows
within 20 % of the figure at 1M.

Run from the repository root::

    .venv/bin/python bench/window_close.py --baseline-tree /tmp/lw-before
    .venv/bin/python bench/window_close.py --quick     # 0 and 200k stored rows, fewer windows
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

PROJECT = "bench"
WINDOW = 60
TOPICS = ["billing", "refund", "password reset", "shipping delay", "api limits", "invoice", "upgrade plan"]
TARGET = 10.0


def _events(models: int, windows: int, per_window: int, start: datetime) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(7)
    inferences, feedback = [], []
    for m in range(models):
        for w in range(windows):
            base = start + timedelta(seconds=w * WINDOW)
            n = int(rng.integers(per_window * 0.9, per_window * 1.1))
            offsets = np.sort(rng.uniform(0, WINDOW, n))
            for i in range(n):
                topic = TOPICS[int(rng.integers(len(TOPICS)))]
                words = " ".join(TOPICS[int(k)] for k in rng.integers(0, len(TOPICS), int(rng.integers(3, 30))))
                event_id = f"{int(rng.integers(1 << 62)):016x}"  # random ids: models interleave in id order
                inferences.append(
                    {
                        "event_id": event_id,
                        "project": PROJECT,
                        "model": f"model-{m:02d}",
                        "provider": "openai",
                        "model_version": "v2" if i % 5 == 0 else "v1",
                        "timestamp": (base + timedelta(seconds=float(offsets[i]))).isoformat(),
                        "latency_ms": float(rng.lognormal(6, 0.4)),
                        "status": "ok" if rng.random() > 0.02 else "error",
                        "input_tokens": int(rng.integers(20, 400)),
                        "output_tokens": int(rng.integers(10, 600)),
                        "cost_usd": float(rng.uniform(0.0001, 0.01)),
                        "prompt": f"Customer asks about {topic}: {words}",
                        "response": f"Here is how to handle {topic}: open settings and follow the steps. "
                        * int(rng.integers(1, 4)),
                        "features": {
                            "account_age_days": float(rng.gamma(2, 100)),
                            "plan": ["free", "pro", "team"][int(rng.integers(3))],
                        },
                        "tags": {
                            "route": ["/chat", "/support", "/summarise"][int(rng.integers(3))],
                            "environment": "production",
                        },
                    }
                )
                if i % 3 == 0:
                    feedback.append(
                        {
                            "feedback_id": f"fb-{event_id}",
                            "project": PROJECT,
                            "inference_id": event_id,
                            "kind": "thumbs",
                            "value": 1.0 if rng.random() > 0.2 else -1.0,
                            "label": "",
                            "name": "",
                            "text": "",
                            "source": "user",
                            "user_id": "",
                            "timestamp": (base + timedelta(seconds=WINDOW + 30)).isoformat(),
                        }
                    )
    return inferences, feedback


def _fill_other_rows(storage: object, db: str, rows: int, end: datetime) -> None:
    """``rows`` earlier inferences of the same 20 models, over the 30 days before the measured windows,
    with random ids (so in the old id-sorted layout every granule holds every model), made by ClickHouse."""
    if not rows:
        return
    span = 30 * 86400
    end = end - timedelta(hours=4)  # before the measured windows: they stay exactly as generated
    storage.command(  # type: ignore[attr-defined]
        f"INSERT INTO {db}.inferences (project, event_id, model, model_version, provider, timestamp, latency_ms, "
        "status, error_type, input_tokens, output_tokens, cached_tokens, cost_usd, prompt, response, features, "
        "prediction, probabilities, embedding, tags) "
        f"SELECT '{PROJECT}', hex(cityHash64(number, 'other')), concat('model-', leftPad(toString(number % 20), 2, '0')), "
        "'v1', 'openai', "
        f"toDateTime64({int(end.timestamp()) - span}, 3, 'UTC') + toIntervalMillisecond(cityHash64(number) % {span * 1000}), "
        "100 + number % 900, 'ok', '', 20 + number % 300, 10 + number % 500, NULL, (number % 100) / 10000, "
        "concat('Customer asks about billing and refund number ', toString(number % 977)), "
        "concat('Here is how to handle it: open settings, step ', toString(number % 131)), "
        "concat('{\"account_age_days\": ', toString(number % 700), ', \"plan\": \"pro\"}'), '', '', [], "
        "map('route', '/chat', 'environment', 'production') "
        f"FROM numbers({rows}) SETTINGS max_insert_threads = 2"
    )


def measure(stored: int, models: int, windows: int, per_window: int, data_dir: Path) -> dict[str, float]:
    """One size, in this process, with whatever ``streams`` / ``schemas`` are importable."""
    from schemas.settings import Settings
    from schemas.stats import WindowKey
    from streams.stats import StatsEngine
    from streams.storage import Storage

    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        log_level="error",
        window_seconds=WINDOW,
        clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}",
    )
    storage = Storage(settings)
    storage.migrate()
    db = storage.database
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(hours=3)
    started = time.perf_counter()
    _fill_other_rows(storage, db, stored, end)
    inferences, feedback = _events(models, windows, per_window, start)
    for chunk in range(0, len(inferences), 20_000):
        storage.insert_json("inferences", orjson.dumps(inferences[chunk : chunk + 20_000]))
    storage.insert_json("feedback", orjson.dumps(feedback))
    fill_seconds = time.perf_counter() - started
    engine = StatsEngine(storage, settings)
    engine.on_rows.clear()
    # the first window of every model becomes its reference; time the others
    for m in range(models):
        engine.tracker.reopen(WindowKey(PROJECT, f"model-{m:02d}", start, start + timedelta(seconds=WINDOW)))
    engine.force_close_all()
    for m in range(models):
        for w in range(1, windows):
            begin = start + timedelta(seconds=w * WINDOW)
            engine.tracker.reopen(WindowKey(PROJECT, f"model-{m:02d}", begin, begin + timedelta(seconds=WINDOW)))
    started = time.perf_counter()
    engine.force_close_all()
    seconds = time.perf_counter() - started
    closed = int(
        storage.scalar(
            f"SELECT uniqExact(model, window_start) FROM {db}.window_stats WHERE family = 'latency' AND metric = 'count' "
            "AND model_version = ''"
        )
    )
    expected = models * windows
    if closed != expected:
        raise SystemExit(f"only {closed} of {expected} windows have statistics")
    storage.command(f"DROP DATABASE IF EXISTS {db}")
    storage.close()
    timed = models * (windows - 1)
    return {
        "stored": stored,
        "windows": timed,
        "seconds": seconds,
        "per_second": timed / seconds,
        "fill_seconds": fill_seconds,
    }


def _run_tree(tree: Path, stored: int, models: int, windows: int, per_window: int) -> dict[str, float]:
    """``measure`` in a subprocess that imports loopwatch from ``tree`` (one chDB engine per process)."""
    done = subprocess.run(  # noqa: S603 - this script, another checkout
        [sys.executable, __file__, "--child", str(stored), str(models), str(windows), str(per_window)],
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=7200,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, nargs="+", default=[0, 1_000_000, 10_000_000])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--windows", type=int, default=6, help="windows per model (the first is the reference)")
    parser.add_argument("--per-window", type=int, default=550)
    parser.add_argument("--baseline-tree", type=Path, help="another loopwatch checkout to run side by side")
    parser.add_argument("--baseline-windows", type=int, default=2, help="windows per model for the baseline")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stored, models, windows, per_window = args.child
        data_dir = Path(tempfile.mkdtemp(prefix="lw-bench-close-"))
        try:
            print(json.dumps(measure(stored, models, windows, per_window, data_dir)))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        return 0
    if args.quick:
        args.stored, args.models, args.windows = [0, 200_000], 10, 4
    here = Path(__file__).resolve().parent.parent
    print(
        f"window close: {args.models} models x {args.windows - 1} timed windows of {WINDOW} s, "
        f"~{args.per_window} events each; other rows stored: {args.stored}"
    )
    results = []
    for stored in args.stored:
        ours = _run_tree(here, stored, args.models, args.windows, args.per_window)
        before = (
            _run_tree(args.baseline_tree.resolve(), stored, args.models, args.baseline_windows + 1, args.per_window)
            if args.baseline_tree
            else None
        )
        results.append((stored, ours, before))
        line = f"  {stored:>12,} stored: {ours['per_second']:7.2f} windows/s ({ours['windows']} in {ours['seconds']:.1f} s)"
        if before:
            line += (
                f" | baseline {before['per_second']:6.2f} windows/s ({before['windows']} in {before['seconds']:.1f} s)"
                f" → {ours['per_second'] / before['per_second']:.1f}x"
            )
        print(line, flush=True)
    rates = {stored: ours["per_second"] for stored, ours, _ in results}
    print(f"target >= {TARGET:g} windows/s at every size: {'MET' if min(rates.values()) >= TARGET else 'NOT met'}")
    if 1_000_000 in rates and 10_000_000 in rates:
        change = rates[10_000_000] / rates[1_000_000] - 1
        print(
            f"10M vs 1M stored rows: {change:+.0%} (target within ±20 %): {'MET' if abs(change) <= 0.2 else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
