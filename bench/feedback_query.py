"""Benchmark: ``GET /v1/feedback`` latency (p50 / p99) over 1,000,000 feedback rows and 200,000 inferences.

What is measured
    Tables are created with ``Storage(settings).migrate()`` in a fresh chDB database and filled with
    ClickHouse SQL (``INSERT ... SELECT ... FROM numbers(...)``), in inserts of 10,000 rows (the
    embedded runner's default flush size), so the tables hold many parts like a table under ingest:

    * 200,000 inferences across 2 projects (``shop``, ``helpdesk``), 3 models each (skewed 50/30/20),
      2 model versions, tags ``route`` (4 values), ``environment`` and ``user`` (400 users),
      timestamps spread over the last 30 days, prompts and responses of a few hundred characters;
    * 1,000,000 feedback rows on them (about 5 per inference, hash-spread; 1% point at inferences that
      never arrived), kinds thumbs 50% / rating 20% / correction 10% / label 8% / score 7% /
      comment 5%, sources user / annotator / evaluator, arriving 30 s to 3 h after their inference.

    The real app (``serving_app``) is then served by uvicorn in this process
    (``loopwatch._server.BackgroundServer``) and queried over HTTP with one keep-alive ``httpx`` client,
    one request at a time; latency is the client-side round trip (request → full body received), so
    it includes HTTP and JSON encoding. Query types, 200 requests each per round (parameters vary per
    request), ``--rounds`` rounds (default 1: the unmerged state needs about 1 s per request; with
    more rounds the median over rounds of each percentile is reported, with every round's p99):

    * newest page (``limit=100``), kind filter, model filter (joins ``inferences``), 1-day time range,
      page 5 via ``cursor`` (cursors collected by following ``next_cursor`` first), tag filter
      (``route:…`` or ``user:…``), and all of model + kind + tag combined.

    The server runs with ``stats_enabled=False``: the rows were loaded with SQL, so at start-up the
    statistics engine would "recover" and compute every window of the last 24 h (thousands of them)
    in the background while the queries run, which a real deployment, whose windows were closed as
    they happened, does not do. The feedback read path does not use the statistics.

    Three storage states, in this order: "unmerged" (merges stopped with ``SYSTEM STOP MERGES`` while
    inserting, so every insert's part is still there, each spanning all 30 days: the worst case),
    "merging" (merges started and left to ClickHouse's own schedule for ``--settle-seconds``, default
    30, with no OPTIMIZE: what a table looks like shortly after a burst of ingest) and "merged" (after
    ``OPTIMIZE TABLE ... FINAL``). The number of active parts is printed for each.

    Baseline, side by side in the same run: the same page computed naively — every feedback row of the
    project (and every inference, for the filters and the join) read with ``FINAL`` and no ``LIMIT``
    into Python, filtered, sorted and joined there — for ``--baseline-requests`` requests per query
    type (default 3). Ratio = naive p50 / API p50.

    Correctness before any figure: ``count() FINAL`` of both tables equals what was generated (1,000,000
    and 200,000, and per project), and for every baseline request the API's page (feedback ids in
    order, whether each has its inference joined, and ``next_cursor`` presence) equals the naive page
    exactly.

Target (from the issue): p99 < 100 ms for these queries.

Run from the repository root::

    .venv/bin/python bench/feedback_query.py            # full: 1M feedback, 200k inferences
    .venv/bin/python bench/feedback_query.py --quick    # smoke: 100k feedback, 20k inferences
"""

from __future__ import annotations

import argparse
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
from _common import console, fmt_int, median, percentile, progress, verdict
from rich.table import Table

from api.queries.feedback import decode_cursor
from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.storage import Storage

TARGET_P99_MS = 100.0
PROJECTS = ("shop", "helpdesk")
MODELS = {
    "shop": ("gpt-4o-mini", "claude-3-5-haiku", "llama-3-8b"),
    "helpdesk": ("gpt-4o", "mistral-small", "llama-3-70b"),
}
KINDS = ("thumbs", "rating", "correction", "label", "score", "comment")
ROUTES = ("/chat", "/support", "/summarise", "/search")
DAYS = 30
CHUNK = 10_000


# ---------------------------------------------------------------------------------------------- data


def inference_sql(db: str, start: int, count: int, total: int, t0_ms: int) -> str:
    """Inference i: project i % 2, model skewed 50/30/20, timestamp spread evenly over 30 days."""
    step_ms = DAYS * 86_400_000 // total
    models = {p: "[" + ", ".join(f"'{m}'" for m in MODELS[p]) + "]" for p in PROJECTS}
    return f"""
INSERT INTO {db}.inferences (project, event_id, model, model_version, provider, timestamp, latency_ms, status,
    error_type, input_tokens, output_tokens, cost_usd, prompt, response, tags)
SELECT
    if(number % 2 = 0, 'shop', 'helpdesk') AS project,
    concat('inf-', toString(number)) AS event_id,
    arrayElement(if(number % 2 = 0, {models["shop"]}, {models["helpdesk"]}),
                 multiIf(h % 10 < 5, 1, h % 10 < 8, 2, 3)) AS model,
    if(h % 5 = 0, '2026-11', '2026-10') AS model_version,
    'openai' AS provider,
    fromUnixTimestamp64Milli(toInt64({t0_ms} + number * {step_ms} + h % {step_ms})) AS timestamp,
    200 + (h % 3000) AS latency_ms,
    if(h % 100 = 0, 'error', 'ok') AS status,
    if(h % 100 = 0, 'timeout', '') AS error_type,
    20 + h % 400 AS input_tokens,
    50 + h % 600 AS output_tokens,
    (h % 1000) / 1e6 AS cost_usd,
    concat('Customer asks about order ', toString(number), ': ', repeat('where is my parcel and when will it arrive? ', 1 + h % 6)) AS prompt,
    concat('Thanks for asking. ', repeat('Your order ships within two business days. ', 1 + h % 5)) AS response,
    map('route', arrayElement({list(ROUTES)}, 1 + h % 4),
        'environment', if(h % 10 = 0, 'staging', 'production'),
        'user', concat('u', leftPad(toString(intDiv(h, 7) % 400), 4, '0'))) AS tags
FROM (SELECT number, sipHash64(number, 'inference') AS h FROM numbers({start}, {count}))
"""


def feedback_sql(db: str, start: int, count: int, inferences: int, t0_ms: int) -> str:
    """Feedback n on inference i = hash(n) % inferences (1% dangling), 30 s .. 3 h after it."""
    step_ms = DAYS * 86_400_000 // inferences
    return f"""
INSERT INTO {db}.feedback (project, feedback_id, inference_id, timestamp, kind, value, label, name, text, source, user_id)
SELECT
    if(i % 2 = 0, 'shop', 'helpdesk') AS project,
    concat(lower(hex(h)), '-', toString(number)) AS feedback_id,
    if(h % 100 = 0, concat('inf-missing-', toString(number)), concat('inf-', toString(i))) AS inference_id,
    fromUnixTimestamp64Milli(toInt64({t0_ms} + i * {step_ms} + ih % {step_ms} + 30000 + h % 10770000)) AS timestamp,
    multiIf(k < 50, 'thumbs', k < 70, 'rating', k < 80, 'correction', k < 88, 'label', k < 95, 'score', 'comment') AS kind,
    multiIf(k < 50, if(h % 7 < 5, 1., -1.), k < 70, toFloat64(1 + h % 5), k >= 88 AND k < 95, (h % 1000) / 1000, NULL) AS value,
    if(k >= 80 AND k < 88, arrayElement(['positive', 'negative', 'neutral'], 1 + h % 3), '') AS label,
    if(k >= 88 AND k < 95, if(h % 2 = 0, 'helpfulness', 'faithfulness'), '') AS name,
    multiIf(k >= 70 AND k < 80, concat('A better answer: your order ', toString(i), ' ships tomorrow. ', repeat('Sorry for the delay. ', 1 + h % 4)),
            k >= 95, concat('Comment: ', repeat('too long, ', 1 + h % 8)), '') AS text,
    multiIf(k < 70 OR k >= 95, 'user', k < 88, 'annotator', 'evaluator') AS source,
    if(k < 70 OR k >= 95, concat('u', leftPad(toString(h % 400), 4, '0')), '') AS user_id
FROM (
    SELECT number, sipHash64(number, 'feedback') AS h, h % {inferences} AS i, sipHash64(i, 'inference') AS ih,
           intDiv(h, 1000) % 100 AS k
    FROM numbers({start}, {count})
)
"""


def load(storage: Storage, inferences: int, feedback: int) -> None:
    db = storage.database
    t0_ms = int((datetime.now(UTC) - timedelta(days=DAYS)).timestamp() * 1000)
    storage.command(f"SYSTEM STOP MERGES {db}.inferences")
    storage.command(f"SYSTEM STOP MERGES {db}.feedback")
    with progress() as bar:
        task = bar.add_task(f"inserting in chunks of {CHUNK:,} (not timed)", total=inferences + feedback)
        for start in range(0, inferences, CHUNK):
            count = min(CHUNK, inferences - start)
            storage.command(inference_sql(db, start, count, inferences, t0_ms))
            bar.advance(task, count)
        for start in range(0, feedback, CHUNK):
            count = min(CHUNK, feedback - start)
            storage.command(feedback_sql(db, start, count, inferences, t0_ms))
            bar.advance(task, count)


def verify_counts(storage: Storage, inferences: int, feedback: int) -> dict[str, int]:
    db = storage.database
    got = {
        "inferences": int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")),
        "feedback": int(storage.scalar(f"SELECT count() FROM {db}.feedback FINAL")),
        "inferences shop": int(storage.scalar(f"SELECT count() FROM {db}.inferences FINAL WHERE project = 'shop'")),
    }
    want = {"inferences": inferences, "feedback": feedback, "inferences shop": (inferences + 1) // 2}
    if got != want:
        raise SystemExit(f"read-back mismatch: {got} != {want}")
    return got


def active_parts(storage: Storage) -> dict[str, int]:
    rows = storage.rows(
        "SELECT table, count() AS parts FROM system.parts WHERE database = {db:String} AND active "
        "AND table IN ('feedback', 'inferences') GROUP BY table",
        {"db": storage.database},
    )
    return {row["table"]: int(row["parts"]) for row in rows}


# ------------------------------------------------------------------------------------------- queries


@dataclass
class QueryType:
    name: str
    params: Callable[[int], dict[str, Any]]


def query_types(
    rng: random.Random, cursors: dict[str, list[tuple[str, dict[str, Any]]]], end: datetime
) -> list[QueryType]:
    def day_range(_: int) -> dict[str, Any]:
        day = rng.randrange(1, DAYS)
        since = end - timedelta(days=day)
        return {
            "since": since.isoformat().replace("+00:00", "Z"),
            "until": (since + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        }

    def tag(i: int) -> dict[str, Any]:
        return {"tag": f"route:{ROUTES[i % 4]}"} if i % 2 == 0 else {"tag": f"user:u{rng.randrange(400):04d}"}

    def combined(i: int) -> dict[str, Any]:
        return {
            "model": MODELS[PROJECTS[i % 2]][(i // 2) % 3],
            "kind": KINDS[(i // 6) % 3],
            "tag": f"route:{ROUTES[i % 4]}",
        }

    def cursor(i: int) -> dict[str, Any]:
        project_cursors = cursors[PROJECTS[i % 2]]
        token, params = project_cursors[(i // 2) % len(project_cursors)]
        return {**params, "cursor": token}

    return [
        QueryType("newest page", lambda i: {}),
        QueryType("kind filter", lambda i: {"kind": KINDS[i % len(KINDS)]}),
        QueryType("model filter (join)", lambda i: {"model": MODELS[PROJECTS[i % 2]][(i // 2) % 3]}),
        QueryType("time range (1 day)", day_range),
        QueryType("cursor page 5", cursor),
        QueryType("tag filter", tag),
        QueryType("model + kind + tag", combined),
    ]


def collect_cursors(clients: dict[str, httpx.Client]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """For each project, the cursor of page 5 (limit 100) for a few filters, by following next_cursor."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for project, client in clients.items():
        out[project] = []
        for params in ({}, {"kind": "thumbs"}, {"kind": "correction"}, {"model": MODELS[project][0]}):
            token = None
            for _ in range(4):
                page = client.get(
                    "/v1/feedback", params={**params, "limit": 100, **({"cursor": token} if token else {})}
                )
                token = page.raise_for_status().json()["next_cursor"]
                assert token, "fewer than 5 pages"
            out[project].append((token, params))
    return out


# ------------------------------------------------------------------------------------------ baseline


class Naive:
    """The page computed without the database's help: everything fetched, filtered and sorted in Python."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def page(self, project: str, params: dict[str, Any], limit: int = 100) -> tuple[list[str], list[bool], bool]:
        db = self.storage.database
        feedback = self.storage.query(
            "SELECT feedback_id, inference_id, toUnixTimestamp64Milli(timestamp) AS ts, kind, value, label, name, "
            f"text, source, user_id FROM {db}.feedback FINAL WHERE project = {{p:String}}",
            {"p": project},
        ).result_rows
        inferences = {
            row[0]: row
            for row in self.storage.query(
                "SELECT event_id, model, model_version, timestamp, prompt, response, tags "
                f"FROM {db}.inferences FINAL WHERE project = {{p:String}}",
                {"p": project},
            ).result_rows
        }
        kinds = params.get("kind")
        kinds = {kinds} if isinstance(kinds, str) else set(kinds or [])
        since = _ms(params["since"]) if "since" in params else None
        until = _ms(params["until"]) if "until" in params else None
        tags = dict(item.split(":", 1) for item in ([params["tag"]] if "tag" in params else []))
        model = params.get("model")
        before = None
        if "cursor" in params:
            cts, cid = decode_cursor(params["cursor"])
            before = (_ms(cts.replace(" ", "T") + "Z"), cid)
        rows = []
        for row in feedback:
            feedback_id, inference_id, ts, kind = row[0], row[1], row[2], row[3]
            if kinds and kind not in kinds:
                continue
            if (since is not None and ts < since) or (until is not None and ts >= until):
                continue
            if before is not None and (ts, feedback_id) >= before:
                continue
            if model or tags:
                inference = inferences.get(inference_id)
                if inference is None or (model and inference[1] != model):
                    continue
                if any(inference[6].get(key) != value for key, value in tags.items()):
                    continue
            rows.append(row)
        rows.sort(key=lambda row: (row[2], row[0]), reverse=True)
        page = rows[:limit]
        return [row[0] for row in page], [row[1] in inferences for row in page], len(rows) > limit


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


# --------------------------------------------------------------------------------------------- runs


@dataclass
class StateResult:
    label: str
    parts: dict[str, int]
    latencies: dict[str, list[list[float]]]  # query type → rounds → ms
    naive: dict[str, list[float]]  # query type → ms


def measure_state(
    label: str,
    storage: Storage,
    clients: dict[str, httpx.Client],
    types: list[QueryType],
    requests: int,
    rounds: int,
    baseline_requests: int,
) -> StateResult:
    parts = active_parts(storage)
    console.print(f"[bold]{label}[/bold]: active parts {parts}")
    naive = Naive(storage)
    # correctness + baseline: API page == naive page, exactly
    naive_ms: dict[str, list[float]] = {qt.name: [] for qt in types}
    with progress() as bar:
        task = bar.add_task("baseline (naive, in Python) + page equality", total=len(types) * baseline_requests)
        for qt in types:
            for i in range(baseline_requests):
                project = PROJECTS[i % 2]
                params = qt.params(i)
                api_page = (
                    clients[project].get("/v1/feedback", params={**params, "limit": 100}).raise_for_status().json()
                )
                started = time.perf_counter()
                ids, joined, more = naive.page(project, params)
                naive_ms[qt.name].append((time.perf_counter() - started) * 1000)
                api_ids = [item["feedback_id"] for item in api_page["items"]]
                api_joined = [item["inference"] is not None for item in api_page["items"]]
                if (api_ids, api_joined, api_page["next_cursor"] is not None) != (ids, joined, more):
                    raise SystemExit(f"{label} / {qt.name} {params}: API page differs from the naive page")
                if not ids:
                    raise SystemExit(f"{label} / {qt.name} {params}: empty page, the query tests nothing")
                bar.advance(task)
    latencies: dict[str, list[list[float]]] = {qt.name: [] for qt in types}
    with progress() as bar:
        task = bar.add_task(
            f"API requests ({rounds} rounds x {len(types)} types x {requests})", total=rounds * len(types) * requests
        )
        for _ in range(rounds):
            for qt in types:
                samples = []
                for i in range(requests):
                    client = clients[PROJECTS[i % 2]]
                    params = {**qt.params(i), "limit": 100}
                    started = time.perf_counter()
                    response = client.get("/v1/feedback", params=params)
                    _ = response.content
                    samples.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{qt.name}: HTTP {response.status_code} {response.text[:300]}")
                    bar.advance(task)
                latencies[qt.name].append(samples)
    return StateResult(label, parts, latencies, naive_ms)


def print_state(result: StateResult, requests: int) -> bool:
    table = Table(
        title=f"GET /v1/feedback, limit 100 — {result.label} (active parts: "
        f"feedback {result.parts.get('feedback')}, inferences {result.parts.get('inferences')})"
    )
    for column in (
        "query type",
        "requests",
        "p50 ms",
        "p99 ms",
        "p99 per round",
        "naive p50 ms (n)",
        "naive / API p50",
    ):
        table.add_column(column, justify="left" if column == "query type" else "right")
    ok = True
    all_p50, all_p99, all_naive = [], [], []
    for name, rounds in result.latencies.items():
        p50 = median(percentile(samples, 50) for samples in rounds)
        p99s = [percentile(samples, 99) for samples in rounds]
        p99 = median(p99s)
        naive = median(result.naive[name])
        ok &= p99 < TARGET_P99_MS
        all_naive += result.naive[name]
        table.add_row(
            name,
            fmt_int(requests * len(rounds)),
            f"{p50:.1f}",
            f"{p99:.1f}",
            " / ".join(f"{v:.0f}" for v in p99s),
            f"{naive:,.0f} ({len(result.naive[name])})",
            f"{naive / p50:,.0f}x",
        )
    n_rounds = len(next(iter(result.latencies.values())))
    for r in range(n_rounds):
        pooled = [v for rounds in result.latencies.values() for v in rounds[r]]
        all_p50.append(percentile(pooled, 50))
        all_p99.append(percentile(pooled, 99))
    table.add_row(
        "[bold]overall[/bold]",
        fmt_int(sum(len(s) for rounds in result.latencies.values() for s in rounds)),
        f"[bold]{median(all_p50):.1f}[/bold]",
        f"[bold]{median(all_p99):.1f}[/bold]",
        " / ".join(f"{v:.0f}" for v in all_p99),
        f"{median(all_naive):,.0f} ({len(all_naive)})",
        f"[bold]{median(all_naive) / median(all_p50):,.0f}x[/bold]",
    )
    table.add_row(f"target p99 < {TARGET_P99_MS:.0f} ms (every type)", "", "", verdict(ok), "", "", "")
    console.print(table)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feedback", type=int, default=1_000_000)
    parser.add_argument("--inferences", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per query type per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline-requests", type=int, default=3, help="naive computations per query type and state")
    parser.add_argument("--states", default="unmerged,merging,merged", help="comma list of: unmerged, merging, merged")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=30.0,
        help="'merging' state: how long background merges run before measuring",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k feedback, 20k inferences, 30 requests")
    args = parser.parse_args()
    if args.quick:
        args.feedback, args.inferences, args.requests, args.rounds, args.baseline_requests = 100_000, 20_000, 30, 1, 1

    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-feedback-"))
    settings = Settings(
        data_dir=data_dir,
        log_level="warning",
        clickhouse_database=f"bench_{uuid.uuid4().hex[:10]}",
        stats_enabled=False,
    )  # see the module docstring
    configure_logging(settings)
    console.rule("[bold]loopwatch feedback query benchmark")
    console.print(
        f"{args.feedback:,} feedback rows, {args.inferences:,} inferences, 2 projects, {DAYS} days; data: {data_dir}"
    )
    storage = Storage(settings)
    storage.migrate()
    started = time.perf_counter()
    load(storage, args.inferences, args.feedback)
    console.print(
        f"loaded in {time.perf_counter() - started:.1f} s; read back: {verify_counts(storage, args.inferences, args.feedback)}"
    )
    end = datetime.now(UTC)

    server = BackgroundServer(serving_app(settings), free_port()).start()
    results: list[StateResult] = []
    try:
        services = server.app.state.runtime
        clients = {
            project: httpx.Client(
                base_url=server.url,
                timeout=120,
                headers={"authorization": f"Bearer {services.keys.create(project, 'bench').token}"},
            )
            for project in PROJECTS
        }
        for client in clients.values():  # warm-up: connections, key cache, first-query compilation
            for _ in range(3):
                client.get("/v1/feedback", params={"limit": 100}).raise_for_status()
        cursors = collect_cursors(clients)
        types = query_types(random.Random(42), cursors, end)
        for state in args.states.split(","):
            if state == "merged":
                with console.status("OPTIMIZE TABLE ... FINAL"):
                    storage.command(f"SYSTEM START MERGES {storage.database}.inferences")
                    storage.command(f"SYSTEM START MERGES {storage.database}.feedback")
                    storage.command(f"OPTIMIZE TABLE {storage.database}.inferences FINAL")
                    storage.command(f"OPTIMIZE TABLE {storage.database}.feedback FINAL")
                verify_counts(storage, args.inferences, args.feedback)
                label = "merged (OPTIMIZE TABLE FINAL)"
            elif state == "merging":
                with console.status(f"background merges running for {args.settle_seconds:.0f} s (no OPTIMIZE)"):
                    storage.command(f"SYSTEM START MERGES {storage.database}.inferences")
                    storage.command(f"SYSTEM START MERGES {storage.database}.feedback")
                    time.sleep(args.settle_seconds)
                label = f"merging (merges started, {args.settle_seconds:.0f} s later, no OPTIMIZE)"
            elif state == "unmerged":
                label = f"unmerged (merges stopped, inserts of {CHUNK:,} rows)"
            else:
                raise SystemExit(f"unknown state {state!r}")
            result = measure_state(label, storage, clients, types, args.requests, args.rounds, args.baseline_requests)
            results.append(result)
        for client in clients.values():
            client.close()
    finally:
        server.stop()
    verdicts = [print_state(result, args.requests) for result in results]
    console.print(
        f"read back: count() FINAL exact in every state; every baseline page equal to the API's page; "
        f"target p99 < {TARGET_P99_MS:.0f} ms: {', '.join(f'{r.label}: {verdict(v)}' for r, v in zip(results, verdicts, strict=True))}"
    )
    storage = Storage(settings)
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
