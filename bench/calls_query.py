"""Benchmark: ``GET /v1/inferences`` (the calls explorer) p50 / p95 per filter kind over 10,000,000 stored
calls, side by side with ``GET /v1/feedback`` on the same store.

What is measured
    The tables are filled with ``bench/feedback_query.py``'s own generators (``inference_sql``,
    ``feedback_sql``: 2 projects, 3 models each, 2 versions, tags route / environment / user, 1 % errors
    of type ``timeout``, prompts of a few hundred characters over the last 30 days; feedback 30 s to 3 h
    after its call), ``--calls`` calls (default 10M) and ``--feedback`` feedback rows (default 1M: about
    one call in ten has feedback), inserted in chunks of ``--chunk`` rows (default 500,000) with
    merges running, then ``OPTIMIZE TABLE … FINAL`` (``--no-optimize`` measures the parts as loaded).

    The real app (``serving_app``) is served by uvicorn in this process and queried over HTTP by one
    keep-alive client, one request at a time, ``limit=50``; latency is the client's round trip. Each
    filter kind is asked ``--requests`` times (default 40) with varying parameters, half per project:
    newest page, model, model + version, one day, one window (``window_start``), status=error,
    error_type, tag, latency range, cost range, has_feedback, feedback_kind, text ``q`` (a common word;
    a rare whole word over one day and over all 30 days: the words index), slowest first, costliest
    first, page 5 by cursor; then the feedback listing's newest page and model filter (the feedback
    bench's query types) on the same store.

    Before any figure, the API's first page of a few kinds is compared with the same page computed by
    one plain ``FINAL`` query with ``ORDER BY … LIMIT`` (ids in order): they must be equal.

Target: p95 < 300 ms per filter kind.

Run from the repository root::

    .venv/bin/python bench/calls_query.py                    # 10M calls, 1M feedback (~10 min to load)
    .venv/bin/python bench/calls_query.py --calls 1000000 --feedback 100000
    .venv/bin/python bench/calls_query.py --quick            # smoke: 200k calls
    .venv/bin/python bench/calls_query.py --store /tmp/calls-10m  # keep the store; later runs reuse it

``--store DIR`` keeps the generated store in DIR: a later run with the same ``--calls`` and ``--feedback``
migrates it (as an upgrade would) and measures it without generating again (the data's 30 days then
end when it was generated). ``--only`` measures the kinds whose name contains one of the given words.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common  # noqa: F401 - puts the repository root on sys.path
import httpx
from _common import console, median, percentile, progress, verdict
from feedback_query import DAYS, MODELS, PROJECTS, ROUTES, feedback_sql, inference_sql
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.storage import Storage

TARGET_P95_MS = 300.0
LIMIT = 50


def load(storage: Storage, calls: int, feedback: int, chunk: int) -> datetime:
    db = storage.database
    t0_ms = int((datetime.now(UTC) - timedelta(days=DAYS)).timestamp() * 1000)
    with progress() as bar:
        task = bar.add_task(f"inserting in chunks of {chunk:,} (not timed)", total=calls + feedback)
        for start in range(0, calls, chunk):
            count = min(chunk, calls - start)
            storage.command(inference_sql(db, start, count, calls, t0_ms))
            bar.advance(task, count)
        for start in range(0, feedback, chunk):
            count = min(chunk, feedback - start)
            storage.command(feedback_sql(db, start, count, calls, t0_ms))
            bar.advance(task, count)
    return datetime.fromtimestamp(t0_ms / 1000, UTC)


def loaded_at(storage: Storage) -> datetime | None:
    """When a kept store's data starts (its ``bench_loaded`` table, written once it was generated and
    merged), or None when there is none to reuse."""
    exists = storage.scalar(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'bench_loaded'",
        {"db": storage.database},
    )
    if not int(exists or 0):
        return None
    return datetime.fromtimestamp(float(storage.scalar(f"SELECT t0 FROM {storage.database}.bench_loaded")), UTC)


def wait_for_mutations(storage: Storage) -> None:
    """Waits until the migrations' background work (MATERIALIZE INDEX / PROJECTION) is done."""
    with console.status("waiting for the migrations' mutations"):
        while int(
            storage.scalar(
                "SELECT count() FROM system.mutations WHERE database = {db:String} AND NOT is_done",
                {"db": storage.database},
            )
        ):
            time.sleep(1)


@dataclass
class Kind:
    name: str
    path: str
    params: Callable[[int], dict[str, Any]]


def kinds(rng: random.Random, t0: datetime, cursors: dict[str, str]) -> list[Kind]:
    def model(i: int) -> str:
        return MODELS[PROJECTS[i % 2]][(i // 2) % 3]

    def moment(hours: int = 0) -> str:
        return (t0 + timedelta(days=rng.uniform(1, DAYS - 1)) + timedelta(hours=hours)).isoformat()

    def day(_: int) -> dict[str, Any]:
        since = t0 + timedelta(days=rng.uniform(1, DAYS - 2))
        return {"since": since.isoformat(), "until": (since + timedelta(days=1)).isoformat()}

    def calls(name: str, params: Callable[[int], dict[str, Any]]) -> Kind:
        return Kind(name, "/v1/inferences", params)

    return [
        calls("newest page", lambda i: {}),
        calls("model", lambda i: {"model": model(i)}),
        calls("model + version", lambda i: {"model": model(i), "model_version": "2026-11"}),
        calls("one day", day),
        calls("one window (window_start)", lambda i: {"model": model(i), "window_start": moment()}),
        calls("status=error", lambda i: {"status": "error"}),
        calls("error_type", lambda i: {"error_type": "timeout", "model": model(i)}),
        calls("tag", lambda i: {"tag": f"route:{ROUTES[i % 4]}"}),
        calls("latency range", lambda i: {"min_latency_ms": 2500 + i % 100, "max_latency_ms": 3000}),
        calls("cost range", lambda i: {"min_cost_usd": 0.0009, "max_cost_usd": 0.001}),
        calls("has_feedback", lambda i: {"has_feedback": "true"}),
        calls("feedback kind", lambda i: {"feedback_kind": "correction"}),
        calls("q common word", lambda i: {"q": "PARCEL"}),
        calls("q rare, one day", lambda i: {**day(i), "q": f"order {rng.randrange(1_000_000)}:"}),
        calls("q rare, all 30 days", lambda i: {"q": f"order {rng.randrange(1_000_000)}:"}),
        calls("slowest first", lambda i: {"sort": "latency", "model": model(i)}),
        calls("costliest first, one day", lambda i: {**day(i), "sort": "cost"}),
        calls("cursor page 5", lambda i: {"cursor": cursors[PROJECTS[i % 2]]}),
        Kind("feedback: newest page", "/v1/feedback", lambda i: {}),
        Kind("feedback: model filter", "/v1/feedback", lambda i: {"model": model(i)}),
    ]


def page_five(client: httpx.Client) -> str:
    cursor = None
    for _ in range(4):
        body = client.get("/v1/inferences", params={"limit": LIMIT, **({"cursor": cursor} if cursor else {})})
        cursor = body.raise_for_status().json()["next_cursor"]
    assert cursor
    return cursor


def check_pages(storage: Storage, client: httpx.Client, project: str) -> None:
    """The API's first page equals one FINAL query's, for a few filters."""
    db = storage.database
    cases = [
        ({}, ""),
        ({"model": MODELS[project][1]}, f"AND model = '{MODELS[project][1]}'"),
        ({"status": "error"}, "AND status = 'error'"),
        ({"q": "PARCEL"}, "AND (prompt ILIKE '%parcel%' OR response ILIKE '%parcel%')"),
        ({"tag": "route:/search"}, "AND tags['route'] = '/search'"),
    ]
    for params, clause in cases:
        api = [
            item["event_id"] for item in client.get("/v1/inferences", params={**params, "limit": LIMIT}).json()["items"]
        ]
        plain = [
            row[0]
            for row in storage.query(
                f"SELECT event_id FROM {db}.inferences FINAL WHERE project = '{project}' {clause} "
                f"ORDER BY timestamp DESC, event_id DESC, model DESC LIMIT {LIMIT}"
            ).result_rows
        ]
        if api != plain or not api:
            raise SystemExit(f"{project} {params}: the API's page differs from the plain query's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--feedback", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--no-optimize", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", type=Path, help="keep the store in this directory and reuse it")
    parser.add_argument("--only", nargs="+", default=[], help="measure only kinds whose name contains a word")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.feedback, args.requests = 200_000, 20_000, 10
    data_dir = args.store or Path(tempfile.mkdtemp(prefix="loopwatch-bench-calls-"))
    settings = Settings(
        data_dir=data_dir,
        log_level="warning",
        clickhouse_database=f"bench_calls_{args.calls}_{args.feedback}"
        if args.store
        else f"bench_{uuid.uuid4().hex[:10]}",
        stats_enabled=False,
    )
    configure_logging(settings)
    console.rule("[bold]loopwatch calls explorer benchmark")
    storage = Storage(settings)
    t0 = loaded_at(storage)
    started = time.perf_counter()
    applied = storage.migrate()
    if t0 is not None:
        wait_for_mutations(storage)
        console.print(
            f"reusing {args.store}: migrations {applied or 'none'} applied in {time.perf_counter() - started:.0f} s"
        )
    else:
        t0 = load(storage, args.calls, args.feedback, args.chunk)
        console.print(
            f"loaded {args.calls:,} calls and {args.feedback:,} feedback in {time.perf_counter() - started:.0f} s"
        )
        if not args.no_optimize:
            with console.status("OPTIMIZE TABLE … FINAL"):
                started = time.perf_counter()
                storage.command(f"OPTIMIZE TABLE {storage.database}.inferences FINAL")
                storage.command(f"OPTIMIZE TABLE {storage.database}.feedback FINAL")
            console.print(f"optimized in {time.perf_counter() - started:.0f} s")
        if args.store:
            storage.command(
                f"CREATE TABLE {storage.database}.bench_loaded ENGINE = TinyLog AS SELECT {t0.timestamp()} AS t0"
            )
    stored = int(storage.scalar(f"SELECT count() FROM {storage.database}.inferences FINAL"))
    if stored != args.calls:
        raise SystemExit(f"read back {stored:,} calls, generated {args.calls:,}")
    parts = storage.scalar(
        "SELECT count() FROM system.parts WHERE database = {db:String} AND table = 'inferences' AND active",
        {"db": storage.database},
    )
    server = BackgroundServer(serving_app(settings), free_port()).start()
    results: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    try:
        services = server.app.state.runtime
        clients = {
            p: httpx.Client(
                base_url=server.url,
                timeout=600,
                headers={"authorization": f"Bearer {services.keys.create(p, 'bench').token}"},
            )
            for p in PROJECTS
        }
        for project, client in clients.items():
            check_pages(storage, client, project)
        cursors = {p: page_five(c) for p, c in clients.items()}
        types = [
            k for k in kinds(random.Random(7), t0, cursors) if not args.only or any(w in k.name for w in args.only)
        ]
        with progress() as bar:
            task = bar.add_task("requests", total=len(types) * args.requests)
            for kind in types:
                samples = results.setdefault(kind.name, [])
                for i in range(args.requests):
                    params = {"limit": LIMIT, **kind.params(i)}
                    began = time.perf_counter()
                    response = clients[PROJECTS[i % 2]].get(kind.path, params=params)
                    _ = response.content
                    samples.append((time.perf_counter() - began) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{kind.name} {params}: HTTP {response.status_code} {response.text[:300]}")
                    bar.advance(task)
        for client in clients.values():
            client.close()
    finally:
        server.stop()
    load_after = os.getloadavg()
    table = Table(
        title=f"GET /v1/inferences, limit {LIMIT}: {args.calls:,} calls, {args.feedback:,} feedback, {parts} parts"
    )
    for column in ("query", "requests", "p50 ms", "p95 ms", "max ms", f"p95 < {TARGET_P95_MS:.0f} ms"):
        table.add_column(column, justify="left" if column == "query" else "right")
    ok = True
    for name, samples in results.items():
        p95 = percentile(samples, 95)
        calls_kind = not name.startswith("feedback:")
        ok &= p95 < TARGET_P95_MS or not calls_kind
        table.add_row(
            name,
            str(len(samples)),
            f"{median(samples):.1f}",
            f"{p95:.1f}",
            f"{max(samples):.0f}",
            verdict(p95 < TARGET_P95_MS) if calls_kind else "(baseline)",
        )
    console.print(table)
    console.print(f"every calls kind p95 < {TARGET_P95_MS:.0f} ms: {verdict(ok)}")
    console.print(
        "load average (1, 5, 15 min) before the requests "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in load_after)
    )
    if not args.store:
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    if not args.store:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
