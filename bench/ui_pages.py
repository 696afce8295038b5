"""Benchmark: dashboard page times (p50 / p95) with 1,000,000 events of 50 models.

What is measured
    A fresh chDB database (``Storage(settings).migrate()``) is filled with ClickHouse SQL
    (``INSERT ... SELECT ... FROM numbers(...)``, in inserts of 10,000 rows, like a table under ingest):

    * 1,000,000 inferences of project ``bench``: 50 models (``model-00`` … ``model-49``), two versions,
      route tags, over the last 24 h;
    * 200,000 feedback rows on them (thumbs, ratings, corrections);
    * the ``window_stats`` rows the statistics engine writes for 24 h of 5-minute windows of every model
      (288 windows x 50 models): latency (7 metrics, and count/p95 per version), cost (total, 3 route
      tags, tokens), drift (dataset, 3 families, 20 columns), quality (thumbs-up rate, mean rating,
      feedback count): 45 rows per window, 648,000 rows;
    * each model's reference (its first window) and 1,000 alerts.

    The real app (``serving_app``) is served by uvicorn in this process (``BackgroundServer``) with
    ``stats_enabled=False`` (the rows were loaded with SQL: a starting engine would otherwise "recover"
    thousands of windows in the background while pages are timed). One keep-alive ``httpx`` client,
    signed in through ``/ui/signin`` with a project key, requests one page at a time; the time is the
    client-side round trip (request → whole HTML received) on loopback, which bounds the server time
    from above. Pages, ``--requests`` each (default 60; the model pages rotate over the 50 models):

    * ``/ui`` (overview of 50 models with sparklines), ``/ui/models/{m}`` (default range: its last 200
      windows, 10 charts), ``/ui/models/{m}?interval=3600`` (re-bucketed to hours), ``/ui/alerts``,
      ``/ui/feedback`` (25 items with their inferences), ``/ui/monitors``.

    Baseline, side by side in the same run: the JSON API request each page corresponds to, timed the
    same way (``/v1/models``, ``/v1/stats/latency?model=m``, the same with ``interval=3600``,
    ``/v1/alerts``, ``/v1/feedback?limit=25``, ``/v1/monitors``). Ratio = page p50 / API p50.

    Correctness before any figure: ``count()`` of inferences, feedback and window_stats equals what was
    generated, the overview lists all 50 models with a sparkline each, and a model page carries the
    chart data of every window in its range.

Target (from the issue): page p95 < 300 ms.

Run from the repository root::

    .venv/bin/python bench/ui_pages.py            # full: 1M events, 50 models (~3 min)
    .venv/bin/python bench/ui_pages.py --quick    # smoke: 100k events, 10 models, 15 requests
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import _common  # noqa: F401 - puts the repository root on sys.path
import httpx
from _common import console, median, percentile, progress, verdict
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.storage import Storage

TARGET_P95_MS = 300.0
PROJECT = "bench"
WINDOW = 300
WINDOWS = 288  # 24 h
CHUNK = 10_000
ROUTES = ("/chat", "/support", "/summarise")
FAMILIES = ("features", "prompt", "response")
# (family, metric, dimension, version) of every window_stats row a model's window gets
SPECS: list[tuple[str, str, str, str]] = [
    *(
        ("latency", m, "", "")
        for m in (
            "count",
            "error_count",
            "error_rate",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_mean_ms",
        )
    ),
    *(("latency", m, "", v) for m in ("count", "latency_p95_ms") for v in ("2026-10", "2026-11")),
    ("cost", "cost_usd", "", ""),
    *(("cost", "cost_usd", f"tag:route={r}", "") for r in ROUTES),
    ("cost", "input_tokens", "", ""),
    ("cost", "output_tokens", "", ""),
    ("cost", "unknown_cost_events", "", ""),
    ("drift", "dataset_drift", "", ""),
    *(("drift", "family_drift", f, "") for f in FAMILIES),
    *(("drift", "column_drift", f"{'prompt' if i < 10 else 'response'}.c{i:02d}", "") for i in range(20)),
    ("quality", "thumbs_up_rate", "", ""),
    ("quality", "mean_rating", "", ""),
    ("quality", "feedback_count", "", ""),
]


def _model(expr: str) -> str:
    return f"concat('model-', leftPad(toString({expr}), 2, '0'))"


def inference_sql(db: str, start: int, count: int, total: int, models: int, t0_ms: int) -> str:
    step_ms = WINDOWS * WINDOW * 1000 // total
    return f"""
INSERT INTO {db}.inferences (project, event_id, model, model_version, provider, timestamp, latency_ms, status,
    error_type, input_tokens, output_tokens, cost_usd, prompt, response, tags)
SELECT '{PROJECT}', concat('inf-', toString(number)), {_model(f"number % {models}")},
    if(h % 5 = 0, '2026-11', '2026-10'), 'openai',
    fromUnixTimestamp64Milli(toInt64({t0_ms} + number * {step_ms} + h % {step_ms})),
    200 + (h % 3000), if(h % 100 = 0, 'error', 'ok'), if(h % 100 = 0, 'timeout', ''),
    20 + h % 400, 50 + h % 600, (h % 1000) / 1e6,
    concat('Customer asks about order ', toString(number), ': ', repeat('where is my parcel? ', 1 + h % 6)),
    concat('Thanks for asking. ', repeat('Your order ships within two business days. ', 1 + h % 5)),
    map('route', arrayElement({list(ROUTES)}, 1 + h % 3), 'environment', 'production')
FROM (SELECT number, sipHash64(number, 'inference') AS h FROM numbers({start}, {count}))
"""


def feedback_sql(db: str, start: int, count: int, inferences: int, t0_ms: int) -> str:
    step_ms = WINDOWS * WINDOW * 1000 // inferences
    return f"""
INSERT INTO {db}.feedback (project, feedback_id, inference_id, timestamp, kind, value, text, source, user_id)
SELECT '{PROJECT}', concat('fb-', toString(number)), concat('inf-', toString(i)),
    fromUnixTimestamp64Milli(toInt64({t0_ms} + i * {step_ms} + 30000 + h % 3600000)),
    multiIf(k < 70, 'thumbs', k < 90, 'rating', 'correction'),
    multiIf(k < 70, if(h % 7 < 5, 1., -1.), k < 90, toFloat64(1 + h % 5), NULL),
    if(k >= 90, concat('A better answer: order ', toString(i), ' ships tomorrow.'), ''),
    if(k >= 90, 'annotator', 'user'), concat('u', toString(h % 400))
FROM (SELECT number, sipHash64(number, 'feedback') AS h, h % {inferences} AS i, intDiv(h, 1000) % 100 AS k
      FROM numbers({start}, {count}))
"""


def stats_sql(db: str, start: int, count: int, models: int, t0_ms: int) -> str:
    """Windows number ``start`` .. of (model, window) pairs, every SPECS row of each."""
    specs = "[" + ", ".join(f"('{f}', '{m}', '{d}', '{v}')" for f, m, d, v in SPECS) + "]"
    return f"""
INSERT INTO {db}.window_stats (project, model, model_version, window_start, window_end, family, metric, dimension,
    value, p_value, threshold, flagged, sample_size, details)
SELECT '{PROJECT}', {_model(f"number % {models}")}, spec.4, ws, ws + toIntervalSecond({WINDOW}), spec.1, spec.2, spec.3,
    multiIf(spec.2 IN ('count', 'feedback_count'), toFloat64(60 + r % 40), spec.2 LIKE 'latency_%', toFloat64(300 + r % 2000),
            spec.2 IN ('error_rate', 'dataset_drift', 'family_drift', 'thumbs_up_rate'), (r % 1000) / 1000,
            spec.2 = 'mean_rating', 1 + (r % 400) / 100, spec.2 = 'cost_usd', (r % 1000) / 1e5, toFloat64(r % 5000)),
    if(spec.2 IN ('column_drift', 'family_drift', 'thumbs_up_rate'), (r % 10000) / 10000, NULL),
    if(spec.2 IN ('column_drift', 'family_drift'), 0.05, NULL),
    if(spec.1 = 'drift' AND r % 20 = 0, 1, 0), 70, '{{}}'
FROM (SELECT number, fromUnixTimestamp64Milli(toInt64({t0_ms} + intDiv(number, {models}) * {WINDOW * 1000})) AS ws
      FROM numbers({start}, {count}))
ARRAY JOIN {specs} AS spec
ARRAY JOIN [sipHash64(number, spec.2, spec.3, spec.4)] AS r
"""


def load(storage: Storage, events: int, feedback: int, models: int) -> datetime:
    db = storage.database
    t0 = datetime.fromtimestamp((time.time() // WINDOW - WINDOWS) * WINDOW, UTC)
    t0_ms = int(t0.timestamp() * 1000)
    pairs = models * WINDOWS
    with progress() as bar:
        task = bar.add_task(f"inserting in chunks of {CHUNK:,} (not timed)", total=events + feedback + pairs)
        for start in range(0, events, CHUNK):
            storage.command(inference_sql(db, start, min(CHUNK, events - start), events, models, t0_ms))
            bar.advance(task, min(CHUNK, events - start))
        for start in range(0, feedback, CHUNK):
            storage.command(feedback_sql(db, start, min(CHUNK, feedback - start), events, t0_ms))
            bar.advance(task, min(CHUNK, feedback - start))
        step = CHUNK // len(SPECS)
        for start in range(0, pairs, step):
            storage.command(stats_sql(db, start, min(step, pairs - start), models, t0_ms))
            bar.advance(task, min(step, pairs - start))
    storage.command(
        f"INSERT INTO {db}.references (project, model, kind, range_start, range_end, rows, profile, explicit) "
        f"SELECT '{PROJECT}', {_model('number')}, 'first_window', fromUnixTimestamp64Milli(toInt64({t0_ms})), "
        f"fromUnixTimestamp64Milli(toInt64({t0_ms + WINDOW * 1000})), 70, '{{}}', 0 FROM numbers({models})"
    )
    storage.command(
        f"INSERT INTO {db}.alerts (project, alert_id, monitor_id, monitor_name, model, model_version, kind, severity, "
        "window_start, window_end, metric, dimension, value, threshold, condition, p_value, details, report_url, "
        "fired_at, dedup_key, channels) "
        f"SELECT '{PROJECT}', concat('alert-', toString(number)), 'default-family-drift', 'Drift', "
        f"{_model(f'number % {models}')}, '', 'drift', arrayElement(['warning', 'critical', 'info'], 1 + number % 3), "
        f"ws, ws + toIntervalSecond({WINDOW}), 'family_drift', 'prompt', 0.5, 0.05, 'flagged', 0.001, '{{}}', '', "
        f"ws + toIntervalSecond({WINDOW + 5}), concat('k', toString(number)), 0 "
        f"FROM (SELECT number, fromUnixTimestamp64Milli(toInt64({t0_ms} + (number % {WINDOWS}) * {WINDOW * 1000})) AS ws "
        "FROM numbers(1000))"
    )
    return t0


def verify(storage: Storage, events: int, feedback: int, models: int) -> None:
    db = storage.database
    counts = {
        table: storage.query(f"SELECT count() FROM {db}.{table} FINAL").result_rows[0][0]
        for table in ("inferences", "feedback", "window_stats")
    }
    expected = {"inferences": events, "feedback": feedback, "window_stats": models * WINDOWS * len(SPECS)}
    if counts != expected:
        raise SystemExit(f"stored {counts}, generated {expected}")
    console.print(f"stored and verified: {counts}")


def sign_in(client: httpx.Client, token: str) -> None:
    page = client.get("/ui/signin").raise_for_status().text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if csrf is None:
        raise SystemExit("no CSRF field on the sign-in page")
    response = client.post("/ui/signin", data={"csrf_token": csrf.group(1), "api_key": token})
    if response.status_code != 303:
        raise SystemExit(f"sign-in refused: HTTP {response.status_code}")


def check_pages(client: httpx.Client, models: int) -> None:
    """The pages hold what they should before any time is taken."""
    overview = client.get("/ui").raise_for_status().text
    rows = re.findall(r'<tr class="model-row" data-model="model-\d+"', overview)
    sparks = overview.count('<svg class="spark"')
    if len(rows) != models or sparks < models * 4:
        raise SystemExit(f"overview: {len(rows)} model rows, {sparks} sparklines (expected {models}, >= {models * 4})")
    page = client.get("/ui/models/model-01").raise_for_status().text
    block = re.search(r'id="chart-latency-data">(.*?)</script>', page, flags=re.DOTALL)
    if block is None:
        raise SystemExit("model page: no latency chart data")
    points = len(json.loads(block.group(1))["data"][0]["x"])
    if points != 200:
        raise SystemExit(f"model page: {points} latency points, expected the last 200 windows")
    console.print(f"pages checked: {len(rows)} models with {sparks} sparklines; model page {points} windows per series")


def timed(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = client.get(path, params=params)
    _ = response.content
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code} {response.text[:300]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--feedback", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--requests", type=int, default=60, help="requests per page")
    parser.add_argument("--quick", action="store_true", help="100k events, 10 models, 15 requests per page")
    args = parser.parse_args()
    if args.quick:
        args.events, args.feedback, args.models, args.requests = 100_000, 20_000, 10, 15
    workdir = Path(tempfile.mkdtemp(prefix="lw-bench-ui-"))
    settings = Settings(
        _env_file=None,
        data_dir=workdir,
        clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}",
        window_seconds=WINDOW,
        stats_enabled=False,
        log_level="warning",
        log_format="console",
        ui_secret="bench-ui-secret-of-some-length",  # noqa: S106 - a throwaway database
    )  # type: ignore[call-arg]
    configure_logging(settings)
    console.rule(
        f"[bold]dashboard pages: {args.events:,} events, {args.models} models, {args.requests} requests per page"
    )
    try:
        server = BackgroundServer(serving_app(settings), free_port()).start()
        try:
            services = server.app.state.runtime
            load(services.storage, args.events, args.feedback, args.models)
            verify(services.storage, args.events, args.feedback, args.models)
            token = services.keys.create(PROJECT, "bench").token
            api_headers = {"authorization": f"Bearer {token}"}
            with (
                httpx.Client(base_url=server.url, timeout=120) as page_client,
                httpx.Client(base_url=server.url, timeout=120, headers=api_headers) as api_client,
            ):
                sign_in(page_client, token)
                check_pages(page_client, args.models)
                return run(page_client, api_client, args.models, args.requests)
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(pages: httpx.Client, api: httpx.Client, models: int, requests: int) -> int:
    def model(i: int) -> str:
        return f"model-{i % models:02d}"

    cases = [  # (name, page path+params, API path+params), each a function of the request number
        ("overview", lambda i: ("/ui", None), lambda i: ("/v1/models", None)),
        (
            "model page (200 windows)",
            lambda i: (f"/ui/models/{model(i)}", None),
            lambda i: ("/v1/stats/latency", {"model": model(i)}),
        ),
        (
            "model page, hourly",
            lambda i: (f"/ui/models/{model(i)}", {"interval": "3600"}),
            lambda i: ("/v1/stats/latency", {"model": model(i), "interval": "3600"}),
        ),
        ("alerts", lambda i: ("/ui/alerts", None), lambda i: ("/v1/alerts", None)),
        ("feedback explorer", lambda i: ("/ui/feedback", None), lambda i: ("/v1/feedback", {"limit": "25"})),
        ("monitors", lambda i: ("/ui/monitors", None), lambda i: ("/v1/monitors", None)),
    ]
    results: dict[str, tuple[list[float], list[float]]] = {}
    with progress() as bar:
        task = bar.add_task("requests (page, then its API request)", total=len(cases) * requests * 2)
        for name, page, endpoint in cases:
            for i in range(3):  # warm-up: caches, first-query compilation
                timed(pages, *page(i))
                timed(api, *endpoint(i))
            page_ms, api_ms = [], []
            for i in range(requests):
                page_ms.append(timed(pages, *page(i)))
                api_ms.append(timed(api, *endpoint(i)))
                bar.advance(task, 2)
            results[name] = (page_ms, api_ms)
    table = Table(title=f"dashboard page time (client round trip on loopback), {requests} requests per page")
    for column in ("page", "p50 ms", "p95 ms", "max ms", "API request p50 ms", "page / API p50"):
        table.add_column(column, justify="left" if column == "page" else "right")
    ok = True
    for name, (page_ms, api_ms) in results.items():
        p95 = percentile(page_ms, 95)
        ok &= p95 < TARGET_P95_MS
        table.add_row(
            name,
            f"{percentile(page_ms, 50):.1f}",
            f"{p95:.1f}",
            f"{max(page_ms):.0f}",
            f"{median(api_ms):.1f}",
            f"{percentile(page_ms, 50) / median(api_ms):.1f}x",
        )
    pooled = [v for page_ms, _ in results.values() for v in page_ms]
    table.add_row(
        "[bold]all pages[/bold]",
        f"{percentile(pooled, 50):.1f}",
        f"[bold]{percentile(pooled, 95):.1f}[/bold]",
        f"{max(pooled):.0f}",
        "",
        "",
    )
    table.add_row(f"target p95 < {TARGET_P95_MS:.0f} ms (every page)", "", verdict(ok), "", "", "")
    console.print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
