"""Benchmark: embedded-mode HTTP ingest throughput (``POST /v1/inferences``), batched vs one event per request.

What is measured
    The real app (``serving_app(Settings(data_dir=<tmp>, log_level="warning"))``: FastAPI + embedded
    runner + chDB) runs under uvicorn in this process (``loopwatch._server.BackgroundServer``; chDB
    allows one engine per process). Load comes from a separate *spawned* process (``bench/_loadgen.py``,
    default 1 process with 16 keep-alive ``httpx`` connections; ``--procs`` / ``--threads``) that POSTs
    bodies pre-serialised with orjson before the clock starts, so the client costs as little as
    possible and does not share the server's GIL. Since a 202 waits for the write of its events
    (group commit), a client needs several requests in flight: each write carries every request that
    arrived while the previous one ran.

    * batched: N = 200,000 realistic events (``loopwatch.demo.traffic.Traffic``: three models, routes,
      users, prompts, responses, tokens, latency, errors) in bodies of 500 events. Wall time runs from
      the first request to "all rows readable": every response received *and*
      ``services.runner.wait_idle(close_windows=False)`` returned (run on the app's loop with
      ``asyncio.run_coroutine_threadsafe``), i.e. every accepted event is in ClickHouse (with the
      default durable acks that is already true at the last response; window statistics, which run
      beside ingest, are not part of the figure).
    * baseline, side by side in the same run and against the same server: 2,000 other events sent one
      HTTP request per event (same connections), timed the same way.

    Before a figure is printed, each run reads back ``SELECT count() FROM <db>.inferences FINAL`` (and
    ``uniqExact(event_id)``) per project and requires exactly the number sent, and the sum of
    ``accepted`` in the 202 bodies must equal it too. Each run gets a fresh database; the figure is the
    median of ``--runs`` runs (each run's value is printed too).

    Event time: the stream is timestamped at ``--event-rate`` events per second of event time (default
    1,000/s, so 200k events span 200 s ending now). With the default 300 s windows, about one window per
    model closes during a run, so the statistics path is exercised at roughly the rate a real stream of
    this volume would exercise it (a much slower event rate would close a window every few thousand
    events and measure the statistics engine instead of ingest).

Also reported ("where the time goes")
    * CPU seconds of the server process (all threads, by thread name) and of the load generators during
      the batched phase, i.e. how many of the 2 cores each side used;
    * the same runs with ``LOOPWATCH_STATS_ENABLED=false`` (``--stats-off-runs``, default 1);
    * catch-up (``--backlog-windows``, default 2,000): the batched phase once more while the window
      closer works through a backfill of that many due windows (20 models, 3 events each), timed to
      the last response (every 202 means written); prints how many of them closed meanwhile;
    * the cost of durability: runs with ``LOOPWATCH_INGEST_ACK=queued`` (``--queued-runs``, default 1),
      where a 202 only means "queued in memory", beside the default durable runs (a 202 waits for the
      group commit that writes the request's events);
    * per-event cost of each server-side step measured in isolation on the same events: JSON parse,
      pydantic validation, cost enrichment, window bookkeeping, sink serialisation, chDB insert.

Target (from the issue): >= 50,000 events/s on this 2-core machine, with default settings. The
script says plainly whether it was met.

Run from the repository root::

    .venv/bin/python bench/ingest_http.py            # full: 200k events, 3 runs
    .venv/bin/python bench/ingest_http.py --quick    # smoke: 20k events, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common  # noqa: F401 - puts the repository root on sys.path
import orjson
from _common import (
    console,
    fmt_int,
    fmt_runs,
    median,
    percentile,
    process_cpu_seconds,
    progress,
    rate,
    thread_cpu,
    thread_cpu_delta,
    verdict,
)
from _loadgen import LoadGenerators
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.traffic import Traffic
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.allocator import tune_malloc
from streams.runtime import Runtime
from streams.storage import Storage

TARGET_EVENTS_PER_SECOND = 50_000
PROJECT, SINGLE_PROJECT = "bench", "bench-single"


@dataclass
class Phase:
    events: int
    requests: int
    seconds: float  # first request → all rows readable
    send_seconds: float  # first request → last response
    server_cpu: float
    client_cpu: float
    request_p50_ms: float
    request_p99_ms: float
    threads: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return rate(self.events, self.seconds)


@dataclass
class Run:
    batched: Phase
    single: Phase


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=data_dir, log_level="warning", clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}", **overrides
    )


def generate(events: int, batch: int, single: int, event_rate: float) -> tuple[list[bytes], list[bytes]]:
    """Pre-serialised bodies: ``events`` in batches of ``batch``; ``single`` one-event bodies."""
    now = datetime.now(UTC)
    batched_traffic = Traffic(
        PROJECT, seed=7, start=now - timedelta(seconds=events / event_rate), rate_per_second=event_rate
    )
    single_traffic = Traffic(
        SINGLE_PROJECT, seed=11, start=now - timedelta(seconds=single / event_rate), rate_per_second=event_rate
    )
    bodies: list[bytes] = []
    with progress() as bar:
        task = bar.add_task("generating events (not timed)", total=events + single)
        for begin in range(0, events, batch):
            items = [batched_traffic.inference(i) for i in range(begin, min(begin + batch, events))]
            bodies.append(orjson.dumps(items))
            bar.advance(task, len(items))
        singles = [orjson.dumps(single_traffic.inference(i)) for i in range(single)]
        bar.advance(task, single)
    return bodies, singles


def wait_written(services: Runtime) -> None:
    assert services.runner is not None
    loop = services.loop
    idle = services.runner.wait_idle(timeout=300, close_windows=False)  # rows readable; statistics are not ingest
    asyncio.run_coroutine_threadsafe(idle, loop).result(timeout=330)


def read_back(storage: Storage, project: str) -> tuple[int, int]:
    db = storage.database
    params = {"p": project}
    final = int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL WHERE project = {{p:String}}", params))
    unique = int(
        storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences WHERE project = {{p:String}}", params)
    )
    return final, unique


def run_phase(
    loadgen: LoadGenerators,
    server: BackgroundServer,
    services: Runtime,
    token: str,
    bodies: list[bytes],
    expected: int,
    project: str,
    label: str,
) -> Phase:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    loadgen.load(server.url, "/v1/inferences", headers, bodies)
    threads_before, cpu_before = thread_cpu(), process_cpu_seconds()
    with progress() as bar:
        task = bar.add_task(label, total=expected)
        started = loadgen.go()
        reports = loadgen.wait(lambda sent: bar.update(task, completed=sent))
        wait_written(services)
        finished = time.monotonic()
    cpu = process_cpu_seconds() - cpu_before
    threads = thread_cpu_delta(threads_before, thread_cpu())
    # correctness before any figure: every request 202, accepted == sent == rows read back
    statuses: dict[int, int] = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        if report["errors"]:
            raise SystemExit(f"{label}: request errors: {report['errors'][:3]}")
    accepted = sum(report["accepted"] for report in reports)
    final, unique = read_back(services.storage, project)
    if statuses != {202: len(bodies)} or not accepted == final == unique == expected:
        raise SystemExit(
            f"{label}: read-back mismatch: statuses={statuses} accepted={accepted} "
            f"count FINAL={final} uniqExact={unique} expected={expected}"
        )
    latencies = [value for report in reports for value in report["latencies"]]
    return Phase(
        events=expected,
        requests=len(bodies),
        seconds=finished - started,
        send_seconds=max(report["last"] for report in reports) - started,
        server_cpu=cpu,
        client_cpu=sum(report["cpu"] for report in reports),
        request_p50_ms=percentile(latencies, 50) * 1000,
        request_p99_ms=percentile(latencies, 99) * 1000,
        threads=threads,
    )


BACKLOG_PROJECT, BACKLOG_MODELS = "bench-backlog", 20


def backlog_bodies(windows: int, window_seconds: int) -> list[bytes]:
    """Three events in each of ``windows`` past windows (20 models): a backfill whose windows are all due."""
    per_model = max(1, windows // BACKLOG_MODELS)
    start = datetime.now(UTC) - timedelta(seconds=(per_model + 12) * window_seconds)
    events = [
        {
            "event_id": f"backlog-{m}-{w}-{i}",
            "model": f"backfilled-{m:02d}",
            "latency_ms": 100.0 + i,
            "timestamp": (start + timedelta(seconds=w * window_seconds + i * 7)).isoformat(),
        }
        for m in range(BACKLOG_MODELS)
        for w in range(per_model)
        for i in range(3)
    ]
    return [orjson.dumps(events[i : i + 500]) for i in range(0, len(events), 500)]


@dataclass
class BacklogRun:
    per_second: float  # first request → last response (every 202 = written)
    windows_due: int  # windows waiting when the batched phase started
    windows_closed: int  # of those, closed while it ran


def backlog_run(
    loadgen: LoadGenerators, data_dir: Path, bodies: list[bytes], events: int, backlog: list[bytes]
) -> BacklogRun:
    """The batched phase while the closer works through a backlog of due windows (a backfill, a restart)."""
    import httpx

    settings = make_settings(data_dir)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    try:
        services: Runtime = server.app.state.runtime
        headers = {
            "authorization": f"Bearer {services.keys.create(BACKLOG_PROJECT, 'bench').token}",
            "content-type": "application/json",
        }
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            for body in backlog:
                if client.post("/v1/inferences", content=body).status_code != 202:
                    raise SystemExit("backlog: a backfill request was refused")
        engine = services.runner.pipeline.stats  # type: ignore[union-attr]
        assert engine is not None
        due = engine.windows_pending()
        token = services.keys.create(PROJECT, "bench").token
        loadgen.load(
            server.url,
            "/v1/inferences",
            {"authorization": f"Bearer {token}", "content-type": "application/json"},
            bodies,
        )
        started = loadgen.go()
        reports = loadgen.wait(lambda sent: None)
        last = max(report["last"] for report in reports)
        closed = int(
            services.storage.scalar(
                f"SELECT uniqExact(model, window_start) FROM {services.storage.database}.window_stats "
                "WHERE project = {p:String} AND family = 'latency' AND metric = 'count' AND model_version = ''",
                {"p": BACKLOG_PROJECT},
            )
        )
        final, unique = read_back(services.storage, PROJECT)
        accepted = sum(report["accepted"] for report in reports)
        if not accepted == final == unique == events:
            raise SystemExit(f"backlog run: accepted={accepted} stored={final}/{unique} expected={events}")
    finally:
        server.stop()
    storage = Storage(settings)
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    return BacklogRun(rate(events, last - started), due, closed)


def one_run(
    loadgen: LoadGenerators, data_dir: Path, bodies: list[bytes], singles: list[bytes], events: int, **overrides: Any
) -> Run:
    settings = make_settings(data_dir, **overrides)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    try:
        services: Runtime = server.app.state.runtime
        batch_token = services.keys.create(PROJECT, "bench").token
        single_token = services.keys.create(SINGLE_PROJECT, "bench").token
        single = run_phase(
            loadgen,
            server,
            services,
            single_token,
            singles,
            len(singles),
            SINGLE_PROJECT,
            "baseline: one event per request",
        )
        batched = run_phase(
            loadgen,
            server,
            services,
            batch_token,
            bodies,
            events,
            PROJECT,
            f"batched: {events // len(bodies)} events per request",
        )
        if read_back(services.storage, SINGLE_PROJECT)[0] != len(singles):
            raise SystemExit("baseline rows changed during the batched phase")
    finally:
        server.stop()
    storage = Storage(settings)
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    return Run(batched, single)


def step_costs(data_dir: Path, bodies: list[bytes], sample_events: int) -> list[tuple[str, float]]:
    """Microseconds per event of each server-side step, measured in isolation (best of 3)."""
    from pydantic import TypeAdapter

    from schemas.events import InferenceEvent
    from schemas.records import InferenceDecoder, encode_records
    from streams.pricing import Pricer
    from streams.stats import StatsEngine

    settings = make_settings(data_dir)
    storage = Storage(settings)
    storage.migrate()
    engine = StatsEngine(storage, settings)
    adapter = TypeAdapter(list[InferenceEvent])
    decoder = InferenceDecoder()
    sample = bodies[: max(1, sample_events // max(1, bodies[0].count(b'"event_id"')))]
    count = sum(body.count(b'"event_id"') for body in sample)
    results: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        best, out = float("inf"), None
        for _ in range(3):
            started = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - started)
        results[name] = best / count * 1e6
        return out

    records = timed(
        "decode + validate (msgspec fast path, the server's)",
        lambda: [record for body in sample for record in decoder.decode(body) or []],
    )
    timed(
        "  for comparison: pydantic validate_json (not used)",
        lambda: [event for body in sample for event in adapter.validate_json(body)],
    )
    pricer = Pricer(settings)
    timed("cost enrichment (Pricer.price, in place)", lambda: pricer.price(records))
    timed("window bookkeeping (observe_inferences)", lambda: engine.observe_inferences(records))
    timed("sink serialisation (encode_records for JSONEachRow)", lambda: encode_records(records))
    chunk = 10_000  # the runner's default flush size
    pieces = [encode_records(records[i : i + chunk]) for i in range(0, len(records), chunk)]
    timed(
        "chDB insert (insert_json, 10k rows per insert; releases the GIL)",
        lambda: [storage.insert_json("inferences", p) for p in pieces],
    )
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    return list(results.items())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="events per HTTP request")
    parser.add_argument("--single", type=int, default=2_000, help="baseline events, one per request")
    parser.add_argument("--runs", type=int, default=3, help="runs with default settings (median reported)")
    parser.add_argument("--stats-off-runs", type=int, default=1, help="extra runs with stats_enabled=False")
    parser.add_argument("--queued-runs", type=int, default=1, help="extra runs with ingest_ack=queued")
    parser.add_argument(
        "--backlog-windows",
        type=int,
        default=2_000,
        help="one extra run while this many due windows wait to be closed (0: skip)",
    )
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=16, help="keep-alive connections per process")
    parser.add_argument("--event-rate", type=float, default=1_000.0, help="events per second of event time")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k events, 500 baseline, 1 run")
    parser.add_argument(
        "--malloc-default", action="store_true", help="keep glibc's malloc defaults (`serve` tunes them first)"
    )
    args = parser.parse_args()
    if not args.malloc_default:
        tune_malloc()  # what `loopwatch serve` does before chDB starts
    if args.quick:
        args.events, args.single, args.runs, args.stats_off_runs, args.queued_runs = 20_000, 500, 1, 1, 1

    configure_logging(Settings(log_level="warning"))
    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-ingest-"))
    console.rule("[bold]loopwatch ingest benchmark (embedded mode, HTTP)")
    console.print(
        f"{args.events:,} events in bodies of {args.batch} vs {args.single:,} events one per request; "
        f"{args.runs} run(s); load: {args.procs} process(es) x {args.threads} connection(s); data: {data_dir}"
    )
    bodies, singles = generate(args.events, args.batch, args.single, args.event_rate)
    console.print(
        f"bodies: {len(bodies)} x ~{sum(map(len, bodies)) / len(bodies) / 1024:,.0f} KiB "
        f"({sum(map(len, bodies)) / args.events:,.0f} bytes per event)"
    )
    loadgen = LoadGenerators(args.procs, args.threads)
    runs: list[Run] = []
    off_runs: list[Run] = []
    queued_runs: list[Run] = []
    try:
        for index in range(args.runs):
            console.print(f"[bold]run {index + 1}/{args.runs}[/bold] (default settings)")
            runs.append(one_run(loadgen, data_dir, bodies, singles, args.events))
            console.print(
                f"  batched {runs[-1].batched.per_second:,.0f} events/s, "
                f"baseline {runs[-1].single.per_second:,.0f} events/s — read back exact"
            )
        for index in range(args.stats_off_runs):
            console.print(f"[bold]run {index + 1}/{args.stats_off_runs}[/bold] (stats_enabled=False)")
            off_runs.append(one_run(loadgen, data_dir, bodies, singles, args.events, stats_enabled=False))
            console.print(f"  batched {off_runs[-1].batched.per_second:,.0f} events/s — read back exact")
        for index in range(args.queued_runs):
            console.print(f"[bold]run {index + 1}/{args.queued_runs}[/bold] (ingest_ack=queued)")
            queued_runs.append(one_run(loadgen, data_dir, bodies, singles, args.events, ingest_ack="queued"))
            console.print(f"  batched {queued_runs[-1].batched.per_second:,.0f} events/s — read back exact")
        backlog = None
        if args.backlog_windows:
            console.print(f"[bold]backlog run[/bold] ({args.backlog_windows:,} due windows at the start)")
            window_seconds = make_settings(data_dir).window_seconds
            backlog = backlog_run(
                loadgen, data_dir, bodies, args.events, backlog_bodies(args.backlog_windows, window_seconds)
            )
            console.print(f"  batched {backlog.per_second:,.0f} events/s — read back exact")
    finally:
        loadgen.close()
    costs = step_costs(data_dir, bodies, 20_000)
    shutil.rmtree(data_dir, ignore_errors=True)

    batched = median(run.batched.per_second for run in runs)
    single = median(run.single.per_second for run in runs)
    table = Table(title="HTTP ingest, embedded mode (first request → all rows readable; read back exact)")
    for column in ("phase", "events", "requests", "events/s per run", "median events/s", "median wall s"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    table.add_row(
        f"batched ({args.batch} events/request)",
        fmt_int(args.events),
        fmt_int(len(bodies)),
        fmt_runs([r.batched.per_second for r in runs]),
        f"[bold]{batched:,.0f}[/bold]",
        f"{median(r.batched.seconds for r in runs):.2f}",
    )
    table.add_row(
        "baseline: one event per request",
        fmt_int(args.single),
        fmt_int(len(singles)),
        fmt_runs([r.single.per_second for r in runs]),
        f"[bold]{single:,.0f}[/bold]",
        f"{median(r.single.seconds for r in runs):.2f}",
    )
    table.add_row("ratio batched / baseline", "", "", "", f"[bold]{batched / single:,.1f}x[/bold]", "")
    if off_runs:
        table.add_row(
            "batched, stats_enabled=False",
            fmt_int(args.events),
            fmt_int(len(bodies)),
            fmt_runs([r.batched.per_second for r in off_runs]),
            f"{median(r.batched.per_second for r in off_runs):,.0f}",
            f"{median(r.batched.seconds for r in off_runs):.2f}",
        )
    if queued_runs:
        table.add_row(
            "batched, ingest_ack=queued (202 before the write)",
            fmt_int(args.events),
            fmt_int(len(bodies)),
            fmt_runs([r.batched.per_second for r in queued_runs]),
            f"{median(r.batched.per_second for r in queued_runs):,.0f}",
            f"{median(r.batched.seconds for r in queued_runs):.2f}",
        )
        table.add_row(
            "durable (default) / queued",
            "",
            "",
            "",
            f"{batched / median(r.batched.per_second for r in queued_runs):.2f}x",
            "",
        )
    if backlog is not None:
        table.add_row(
            f"batched, beside a backlog of {backlog.windows_due:,} due windows "
            f"({backlog.windows_closed:,} closed meanwhile)",
            fmt_int(args.events),
            fmt_int(len(bodies)),
            "",
            f"{backlog.per_second:,.0f}",
            "",
        )
    table.add_row(
        f"target >= {TARGET_EVENTS_PER_SECOND:,} events/s (defaults: durable 202)",
        "",
        "",
        "",
        verdict(batched >= TARGET_EVENTS_PER_SECOND),
        "",
    )
    console.print(table)

    detail = Table(title="where the time goes (batched phase, median over runs)")
    detail.add_column("figure")
    detail.add_column("stats on", justify="right")
    if off_runs:
        detail.add_column("stats off", justify="right")
    if queued_runs:
        detail.add_column("ingest_ack=queued", justify="right")

    def row(name: str, fn: Any, fmt: str) -> None:
        cells = [fmt.format(median(fn(r.batched) for r in runs))]
        cells += [fmt.format(median(fn(r.batched) for r in extra)) for extra in (off_runs, queued_runs) if extra]
        detail.add_row(name, *cells)

    row("first request → last response (s)", lambda p: p.send_seconds, "{:.2f}")
    row("last response → rows readable (s)", lambda p: p.seconds - p.send_seconds, "{:.2f}")
    row("request latency p50 (ms)", lambda p: p.request_p50_ms, "{:.0f}")
    row("request latency p99 (ms)", lambda p: p.request_p99_ms, "{:.0f}")
    row("server process CPU (cores busy)", lambda p: p.server_cpu / p.seconds, "{:.2f}")
    row("load generators CPU (cores busy)", lambda p: p.client_cpu / p.seconds, "{:.2f}")
    row("server CPU per event (µs)", lambda p: p.server_cpu / p.events * 1e6, "{:.1f}")
    detail.add_row(
        "baseline: server CPU per event (µs)",
        *[
            f"{median(r.single.server_cpu / r.single.events * 1e6 for r in group):.0f}"
            for group in (runs, off_runs, queued_runs)
            if group
        ],
    )
    console.print(detail)

    threads = Table(title="server CPU by thread, batched phase (last run)")
    threads.add_column("thread (digits folded)")
    threads.add_column("CPU s", justify="right")
    threads.add_column("share", justify="right")
    last = runs[-1].batched
    total = sum(last.threads.values())
    for name, seconds in sorted(last.threads.items(), key=lambda item: -item[1])[:10]:
        threads.add_row(name, f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(threads)

    steps = Table(title="server-side steps in isolation (same events, one thread, best of 3)")
    steps.add_column("step")
    steps.add_column("µs per event", justify="right")
    steps.add_column("share", justify="right")
    used = [(name, cost) for name, cost in costs if "for comparison" not in name]
    steps_total = sum(cost for _, cost in used)
    holding_gil = sum(cost for name, cost in used if "chDB insert" not in name)
    for name, cost in costs:
        steps.add_row(name, f"{cost:.1f}", f"{cost / steps_total:.0%}" if (name, cost) in used else "")
    steps.add_row("[bold]sum[/bold] (→ single-thread ceiling)", f"{steps_total:.1f}", f"{1e6 / steps_total:,.0f} ev/s")
    steps.add_row(
        "sum of the steps holding the GIL (→ one-process ceiling)",
        f"{holding_gil:.1f}",
        f"{1e6 / holding_gil:,.0f} ev/s",
    )
    console.print(steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
