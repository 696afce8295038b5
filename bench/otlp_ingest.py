"""Benchmark: OTLP/HTTP trace ingest (``POST /v1/traces``, protobuf, 512 spans per export) vs our JSON ingest.

What is measured
    The real app (FastAPI + embedded runner + chDB, default settings: a 200 waits for the durable write)
    runs under uvicorn in this process; load comes from a spawned process (``bench/_loadgen.py``, 16
    keep-alive connections) that POSTs bodies prepared before the clock starts.

    * otlp: N spans (default 102,400 = 200 exports of 512) made with the OpenTelemetry SDK from
      realistic traffic (``loopwatch.demo.traffic.Traffic``: three models, prompts and responses as
      ``gen_ai.input.messages`` / ``gen_ai.output.messages``, tokens, latency as span duration, errors),
      encoded by the SDK's own OTLP encoder (``encode_spans``) into ``ExportTraceServiceRequest``
      protobuf bodies of 512 spans, exactly what ``OTLPSpanExporter`` sends.
    * json, side by side in the same run and against the same server: the *same* events (the records
      the OTLP mapping makes of those spans, under another project) as JSON bodies of 512 events to
      ``POST /v1/inferences``.

    Wall time runs from the first request to the last response (each response means written). Before
    a figure is printed, each phase reads back ``count() FINAL`` and ``uniqExact(event_id)`` of its
    project and requires exactly N, and every response must be 200 (otlp, without partial_success) or
    202 (json). Each run gets a fresh database; figures are medians of ``--runs``.

Target (from the issue): >= 25,000 spans/s through ``/v1/traces`` on this 2-core machine.

Run from the repository root::

    .venv/bin/python bench/otlp_ingest.py            # 102,400 spans, 3 runs
    .venv/bin/python bench/otlp_ingest.py --quick    # smoke: 20,480 spans, 1 run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _common  # noqa: F401 - puts the repository root on sys.path
import orjson
from _common import console, fmt_int, fmt_runs, median, process_cpu_seconds, progress, rate, verdict
from _loadgen import LoadGenerators
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.traffic import Traffic
from loopwatch.process import serving_app
from schemas.records import encode_records
from schemas.settings import Settings
from streams.otlp.mapping import map_traces
from streams.otlp.payloads import decode_traces
from streams.runtime import Runtime
from streams.storage import Storage

TARGET_SPANS_PER_SECOND = 25_000
OTLP_PROJECT, JSON_PROJECT = "bench-otlp", "bench-json"


def _span_attributes(event: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": event["provider"],
        "gen_ai.request.model": event["model"],
        "gen_ai.usage.input_tokens": event["input_tokens"],
        "gen_ai.usage.output_tokens": event["output_tokens"],
        "gen_ai.input.messages": orjson.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": event["prompt"]}]}]
        ).decode(),
        "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": event["response"]}]}]
        ).decode(),
        "user.id": event["tags"]["user"],
        "http.route": event["tags"]["route"],
    }
    if event["error_type"]:
        attributes["error.type"] = event["error_type"]
    return attributes


def generate(spans: int, batch: int, event_rate: float) -> tuple[list[bytes], list[bytes]]:
    """Protobuf exports of ``batch`` SDK spans, and the same events as JSON bodies for ``/v1/inferences``."""
    now = datetime.now(UTC)
    traffic = Traffic(
        OTLP_PROJECT, seed=7, start=now - timedelta(seconds=spans / event_rate), rate_per_second=event_rate
    )
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-app", "service.version": "1.0"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    otlp: list[bytes] = []
    json_bodies: list[bytes] = []
    with progress() as bar:
        task = bar.add_task("generating spans with the SDK (not timed)", total=spans)
        for begin in range(0, spans, batch):
            memory.clear()
            for i in range(begin, min(begin + batch, spans)):
                event = traffic.inference(i)
                start = int(datetime.fromisoformat(event["timestamp"]).timestamp() * 1e9)
                span = tracer.start_span(f"chat {event['model']}", start_time=start, attributes=_span_attributes(event))
                if event["status"] == "error":
                    span.set_status(trace.StatusCode.ERROR)
                span.end(end_time=start + int(event["latency_ms"] * 1e6))
            body = encode_spans(list(memory.get_finished_spans())).SerializeToString()
            otlp.append(body)
            records = map_traces(decode_traces(body, "protobuf"), JSON_PROJECT).records
            json_bodies.append(encode_records(records))
            bar.update(task, advance=len(records))
    return otlp, json_bodies


def read_back(storage: Storage, project: str) -> tuple[int, int]:
    db, params = storage.database, {"p": project}
    final = int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL WHERE project = {{p:String}}", params))
    unique = int(
        storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences WHERE project = {{p:String}}", params)
    )
    return final, unique


def run_phase(
    loadgen: LoadGenerators,
    server: BackgroundServer,
    services: Runtime,
    project: str,
    path: str,
    content_type: str,
    bodies: list[bytes],
    expected: int,
    label: str,
) -> tuple[float, float]:
    """(seconds first request → last response, server CPU seconds), after checking the read-back."""
    token = services.keys.create(project, "bench").token
    loadgen.load(server.url, path, {"authorization": f"Bearer {token}", "content-type": content_type}, bodies)
    cpu_before = process_cpu_seconds()
    console.print(f"  {label} …")
    started = loadgen.go()
    reports = loadgen.wait()
    cpu = process_cpu_seconds() - cpu_before
    statuses: dict[int, int] = {}
    for report in reports:
        for status, count in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        if report["errors"]:
            raise SystemExit(f"{label}: request errors: {report['errors'][:3]}")
    final, unique = read_back(services.storage, project)
    ok_status = 200 if path == "/v1/traces" else 202
    if statuses != {ok_status: len(bodies)} or not final == unique == expected:
        raise SystemExit(
            f"{label}: read-back mismatch: statuses={statuses} FINAL={final} uniq={unique} expected={expected}"
        )
    return max(report["last"] for report in reports) - started, cpu


def one_run(
    loadgen: LoadGenerators, data_dir: Path, otlp: list[bytes], json_bodies: list[bytes], spans: int
) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, log_level="warning", clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}")
    server = BackgroundServer(serving_app(settings), free_port()).start()
    try:
        services: Runtime = server.app.state.runtime
        otlp_seconds, otlp_cpu = run_phase(
            loadgen,
            server,
            services,
            OTLP_PROJECT,
            "/v1/traces",
            "application/x-protobuf",
            otlp,
            spans,
            "otlp: /v1/traces",
        )
        json_seconds, json_cpu = run_phase(
            loadgen,
            server,
            services,
            JSON_PROJECT,
            "/v1/inferences",
            "application/json",
            json_bodies,
            spans,
            "json: /v1/inferences",
        )
    finally:
        server.stop()
    storage = Storage(settings)
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    return {
        "otlp": rate(spans, otlp_seconds),
        "json": rate(spans, json_seconds),
        "otlp_cpu_us": otlp_cpu / spans * 1e6,
        "json_cpu_us": json_cpu / spans * 1e6,
    }


def mapping_cost(otlp: list[bytes]) -> tuple[float, float]:
    """µs per span for protobuf decoding and for the mapping alone, on the bench's bodies (one core)."""
    sample = otlp[: max(1, min(len(otlp), 40))]
    spans = 0
    started = time.perf_counter()
    decoded = [decode_traces(body, "protobuf") for body in sample]
    decode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for export in decoded:
        spans += len(map_traces(export, OTLP_PROJECT).records)
    map_seconds = time.perf_counter() - started
    return decode_seconds / spans * 1e6, map_seconds / spans * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=102_400)
    parser.add_argument("--batch", type=int, default=512, help="spans per export")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=16, help="keep-alive connections per process")
    parser.add_argument("--event-rate", type=float, default=1_000.0, help="spans per second of event time")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,480 spans, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.spans, args.runs = 20_480, 1

    configure_logging(Settings(log_level="warning"))
    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-otlp-"))
    console.rule("[bold]loopwatch OTLP ingest benchmark (embedded mode)")
    otlp, json_bodies = generate(args.spans, args.batch, args.event_rate)
    console.print(
        f"otlp bodies: {len(otlp)} x ~{sum(map(len, otlp)) / len(otlp) / 1024:,.0f} KiB; "
        f"json bodies: ~{sum(map(len, json_bodies)) / len(json_bodies) / 1024:,.0f} KiB"
    )
    response = ExportTraceServiceResponse()  # the success body the server sends: nothing rejected
    assert not response.HasField("partial_success")
    loadgen = LoadGenerators(args.procs, args.threads)
    runs: list[dict[str, float]] = []
    try:
        for index in range(args.runs):
            console.print(f"[bold]run {index + 1}/{args.runs}[/bold]")
            runs.append(one_run(loadgen, data_dir, otlp, json_bodies, args.spans))
            console.print(
                f"  otlp {runs[-1]['otlp']:,.0f} spans/s, json {runs[-1]['json']:,.0f} events/s — read back exact"
            )
    finally:
        loadgen.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    decode_us, map_us = mapping_cost(otlp)

    otlp_rate, json_rate = median(r["otlp"] for r in runs), median(r["json"] for r in runs)
    table = Table(
        title=f"{args.spans:,} GenAI spans / events, {args.batch} per request (first request → last response)"
    )
    for column in ("path", "per run", "median /s", "server CPU µs per event"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row(
        "POST /v1/traces (OTLP protobuf)",
        fmt_runs([r["otlp"] for r in runs]),
        f"[bold]{fmt_int(otlp_rate)}[/bold]",
        f"{median(r['otlp_cpu_us'] for r in runs):.1f}",
    )
    table.add_row(
        "POST /v1/inferences (JSON), same events",
        fmt_runs([r["json"] for r in runs]),
        f"[bold]{fmt_int(json_rate)}[/bold]",
        f"{median(r['json_cpu_us'] for r in runs):.1f}",
    )
    table.add_row("ratio otlp / json", "", f"{otlp_rate / json_rate:.2f}x", "")
    console.print(table)
    console.print(
        f"where OTLP's extra time goes (one core, in isolation): protobuf decode {decode_us:.1f} µs/span, "
        f"mapping to records {map_us:.1f} µs/span"
    )
    met = otlp_rate >= TARGET_SPANS_PER_SECOND
    console.print(
        f"target >= {TARGET_SPANS_PER_SECOND:,} spans/s through /v1/traces: {verdict(met)} ({otlp_rate:,.0f})"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
