"""``loopwatch demo``: the whole loop on a laptop, against the real embedded service over HTTP.

Steps: start the service (API + processors, chDB) on a free local port → create a project key →
stream synthetic inferences with a progress bar, with a drift injected half-way (longer, shouting
prompts; apologetic, rambling answers; slower, costlier calls; unhappy users), sending each batch's
feedback two batches late (and some of it before its inference, as happens in production) → wait
until everything is written → show the per-window statistics the workers computed → read everything
back through the API and compare with what was sent.

Event time is compressed (50 events per second of event time, sent as fast as the API takes them), so
ten-second windows close as the stream moves on and the whole loop takes seconds.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from api import create_app
from api.services import Services
from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.traffic import Traffic
from schemas.settings import Settings

PROJECT = "demo"


def _wait_written(services: Services) -> None:
    if services.runner is not None:
        loop = services.extras["loop"]
        asyncio.run_coroutine_threadsafe(services.runner.wait_idle(), loop).result(timeout=120)


def _close_windows(services: Services) -> None:
    """Close the last windows now instead of after the idle timeout, and refresh late-feedback quality."""
    if services.runner is not None:
        pipeline = services.runner.pipeline

        async def close() -> None:
            await asyncio.to_thread(pipeline.close_windows, force_all=True, force_quality=True)

        asyncio.run_coroutine_threadsafe(close(), services.extras["loop"]).result(timeout=120)


def _post(client: httpx.Client, path: str, items: list[dict[str, Any]]) -> None:
    if not items:
        return
    response = client.post(path, content=orjson.dumps(items), headers={"content-type": "application/json"})
    response.raise_for_status()


def stream_traffic(
    client: httpx.Client, traffic: Traffic, events: int, batch: int, console: Console
) -> tuple[int, Counter[str]]:
    """Send inferences and late feedback; returns (inferences sent, feedback sent by kind)."""
    sent_feedback: Counter[str] = Counter()
    held: list[list[dict[str, Any]]] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("streaming inferences", total=events)
        early: list[dict[str, Any]] = []
        for inferences, feedback in traffic.batches(events, batch):
            if early:  # feedback that overtook its inference: sent first, joined once the inference lands
                _post(client, "/v1/feedback", early)
            _post(client, "/v1/inferences", inferences)
            held.append(feedback)
            if len(held) > 2:
                late = held.pop(0)
                early = late[: len(late) // 10]
                _post(client, "/v1/feedback", late[len(late) // 10 :])
                sent_feedback.update(item["kind"] for item in late)
            progress.advance(task, len(inferences))
        _post(client, "/v1/feedback", early)
        for late in held:
            _post(client, "/v1/feedback", late)
            sent_feedback.update(item["kind"] for item in late)
    return events, sent_feedback


def read_back(client: httpx.Client) -> tuple[list[dict[str, Any]], Counter[str], int]:
    """(per-model counts, exported feedback by kind, exported feedback joined to an inference)."""
    models = client.get("/v1/models").raise_for_status().json()
    kinds: Counter[str] = Counter()
    joined = 0
    with client.stream("GET", "/v1/feedback/export", params={"format": "jsonl"}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line:
                item = orjson.loads(line)
                kinds[item["kind"]] += 1
                joined += item["inference"] is not None
    return models, kinds, joined


DEMO_MODEL = "gpt-4o-mini"


def demo_settings(workdir: Path) -> Settings:
    # drift_share 0.3: 22 of the demo's columns are text descriptors, and a realistic shift moves a third
    return Settings(
        data_dir=workdir, log_format="console", log_level="warning", window_seconds=10,
        allowed_lateness_seconds=2, drift_share=0.3, quality_refresh_seconds=0.2, reference_min_rows=100,
    )  # fmt: skip


def window_table(client: httpx.Client, model: str) -> Table:
    """Per-window statistics of one model, as the API serves them."""
    columns: dict[str, dict[str, dict[str, Any]]] = {}
    for family, metric in (("latency", "count"), ("latency", "latency_p95_ms"), ("cost", "cost_usd"),
                           ("drift", "dataset_drift"), ("quality", "thumbs_up_rate")):  # fmt: skip
        params = {"model": model, "metric": metric, "dimension": ""}
        for row in client.get(f"/v1/stats/{family}", params=params).raise_for_status().json():
            columns.setdefault(row["window_start"], {})[metric] = row
    table = Table("window (UTC)", "calls", "p95 latency", "cost", "drifted share", "thumbs-up rate",
                  title=f"per-window statistics of {model}")  # fmt: skip

    def cell(row: dict[str, Any] | None, fmt: str) -> str:
        if row is None:
            return "–"
        text = fmt.format(row["value"])
        return f"[bold red]{text} ⚠[/bold red]" if row["flagged"] else text

    for start in sorted(columns):
        row = columns[start]
        table.add_row(start[11:19], cell(row.get("count"), "{:.0f}"), cell(row.get("latency_p95_ms"), "{:.0f} ms"),
                      cell(row.get("cost_usd"), "${:.4f}"), cell(row.get("dataset_drift"), "{:.0%}"),
                      cell(row.get("thumbs_up_rate"), "{:.0%}"))  # fmt: skip
    return table


def run_demo(console: Console, *, events: int, batch: int, data_dir: Path | None) -> int:
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="loopwatch-demo-"))
    settings = demo_settings(workdir)
    configure_logging(settings)
    console.rule("[bold]loopwatch demo")
    console.print(f"data: {workdir} (chDB, embedded mode)")
    server = BackgroundServer(create_app(settings), free_port()).start()
    try:
        services: Services = server.app.state.services
        token = services.keys.create(PROJECT, "demo").token
        console.print(f"service on {server.url}, project key created for [bold]{PROJECT}[/bold]")
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            now = datetime.now(UTC)
            start = now - timedelta(seconds=now.timestamp() % settings.window_seconds)  # whole windows
            traffic = Traffic(PROJECT, start=start, rate_per_second=50, drift_at=events // 2)
            sent, sent_feedback = stream_traffic(client, traffic, events, batch, console)
            _wait_written(services)
            _close_windows(services)
            console.print(window_table(client, DEMO_MODEL))
            models, kinds, joined = read_back(client)
    finally:
        server.stop()
    return _summary(console, sent, sent_feedback, models, kinds, joined)


def _summary(
    console: Console,
    sent: int,
    sent_feedback: Counter[str],
    models: list[dict[str, Any]],
    kinds: Counter[str],
    joined: int,
) -> int:
    table = Table("model", "versions", "inferences", "errors", "feedback", title="read back through the API")
    for row in models:
        table.add_row(row["model"], ", ".join(row["versions"]), str(row["inferences"]), str(row["errors"]),
                      str(row["feedback"]))  # fmt: skip
    console.print(table)
    stored = sum(row["inferences"] for row in models)
    checks = [
        ("inferences", sent, stored),
        *((f"feedback: {kind}", sent_feedback[kind], kinds[kind]) for kind in sorted(sent_feedback)),
        ("feedback joined to its inference", sum(sent_feedback.values()), joined),
    ]
    result = Table("what", "sent", "read back", "match")
    ok = True
    for what, expected, actual in checks:
        ok &= expected == actual
        result.add_row(what, str(expected), str(actual), "[green]yes[/green]" if expected == actual else "[red]NO[/red]")
    console.print(result)
    console.print("[bold green]all counts match[/bold green]" if ok else "[bold red]counts differ[/bold red]")
    return 0 if ok else 1
