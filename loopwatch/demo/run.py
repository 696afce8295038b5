"""``loopwatch demo``: the whole loop on a laptop, against the real embedded service over HTTP.

Steps: start the service (API + processors, chDB) on a free local port → create a project key →
stream synthetic inferences with a progress bar, with a drift injected half-way (longer, shouting
prompts; apologetic, rambling answers; slower, costlier calls; unhappy users), sending each batch's
feedback two batches late (and some of it before its inference, as happens in production) → wait
until everything is written → show the per-window statistics the workers computed → read everything
back through the API and compare with what was sent.

A drift monitor with a signed-webhook channel points at a receiver the demo runs on 127.0.0.1; the
alert it receives is printed with its verified signature and the Slack Block Kit message the same
alert becomes on a Slack channel.

Event time is compressed (50 events per second of event time, sent as fast as the API takes them), so
ten-second windows close as the stream moves on and the whole loop takes seconds. The stream's event
time ends at the moment it starts: no event is stamped later than when it is sent.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.demo.traffic import Traffic
from loopwatch.process import serving_app
from schemas.events import AlertEvent
from schemas.settings import Settings
from streams.delivery import slack_message
from streams.delivery.wording import P_VALUE_TESTS, family_words
from streams.runtime import Runtime

PROJECT = "demo"
RATE_PER_SECOND = 50  # events per second of event time


def _statistic(feature: dict[str, Any]) -> str:
    """``ks p=1e-99, effect 0.62`` for p-value tests (a bare ``z 0`` reads as "no drift"),
    ``wasserstein 0.31`` else; the family rule's effect size where the alert carries it."""
    method, value = feature.get("method"), feature.get("value", float("nan"))
    text = f"{method} p={value:.2g}" if method in P_VALUE_TESTS else f"{method} {value:.3g}"
    effect = feature.get("effect")
    return text + (f", effect {effect:.2f}" if isinstance(effect, int | float) else "")


def _wait_written(runtime: Runtime) -> None:
    if runtime.runner is not None:
        loop = runtime.loop
        asyncio.run_coroutine_threadsafe(runtime.runner.wait_idle(), loop).result(timeout=120)


def _close_windows(runtime: Runtime) -> None:
    """Close the last windows now instead of after the idle timeout, and refresh late-feedback quality."""
    if runtime.runner is not None:
        pipeline = runtime.runner.pipeline

        async def close() -> None:
            await asyncio.to_thread(pipeline.close_windows, force_all=True, force_quality=True)

        asyncio.run_coroutine_threadsafe(close(), runtime.loop).result(timeout=120)


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


WEBHOOK_SECRET = secrets.token_hex(16)


#: Where ``loopwatch serve`` serves the data a demo leaves behind (its default port).
SERVE_AFTERWARDS_URL = "http://127.0.0.1:8000"


def demo_settings(workdir: Path, port: int, *, keeps_serving: bool = True) -> Settings:
    """The demo's server. Links in its alerts point where the dashboard will be when a person clicks them:
    this server while it keeps serving, else the ``loopwatch serve`` the demo tells people to run."""
    # allow_private_webhooks: the demo's receiver is on loopback, which production refuses by default.
    return Settings(
        data_dir=workdir,
        log_format="console",
        log_level="warning",
        window_seconds=10,
        allowed_lateness_seconds=2,
        quality_refresh_seconds=0.2,
        reference_min_rows=100,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.2,
        public_url=f"http://127.0.0.1:{port}" if keeps_serving else SERVE_AFTERWARDS_URL,
        ui_secret=secrets.token_urlsafe(32),  # one process: a fresh secret per run (sessions end with it)
    )


def create_monitor(client: httpx.Client, receiver: WebhookReceiver) -> dict[str, Any]:
    monitor = {
        "monitor_id": "demo-drift",
        "name": f"{DEMO_MODEL} input/output drift",
        "scope": DEMO_MODEL,
        "family": "drift",
        "metric": "family_drift",
        "condition": {"type": "flagged"},
        "severity": "critical",
        "cooldown_seconds": 3600,
        "retrain_after": 3,
        "channels": [{"type": "webhook", "url": receiver.url, "secret": WEBHOOK_SECRET}],
    }
    return client.post("/v1/monitors", json=monitor).raise_for_status().json()


def show_alert(console: Console, receiver: WebhookReceiver, drift_starts: datetime, window_seconds: int) -> bool:
    """Print the first alert the receiver got; True when it names the window where the drift began."""
    try:  # the alert, not the retraining request, which can arrive first (alerts wait to be grouped)
        request = receiver.wait_for_event("alert", timeout=60)
    except TimeoutError:
        console.print("[bold red]no alert reached the webhook receiver[/bold red]")
        return False
    alert = AlertEvent.model_validate_json(request.body)
    features = alert.details.get("features", [])[:5]
    console.rule(f"[bold]alert received by the webhook at {receiver.url}")
    console.print(
        f"{alert.severity.upper()} {alert.kind}: {alert.monitor_name} — {alert.summary} "
        f"in window {alert.window_start:%H:%M:%S}–{alert.window_end:%H:%M:%S}",
        soft_wrap=True,
    )
    console.print("top drifted columns: " + ", ".join(f"{f.get('name')} ({_statistic(f)})" for f in features))
    console.print(f"signature {request.signature[:32]}… verified with the monitor's secret: {request.verified}")
    console.print(f"open the alert: {alert.alert_url}", soft_wrap=True)
    console.print("[bold]the same alert as a Slack message (Block Kit):[/bold]")
    console.print_json(orjson.dumps(slack_message(alert)).decode())
    window_of_drift = drift_starts - timedelta(seconds=drift_starts.timestamp() % window_seconds)
    on_time = alert.window_start <= window_of_drift + timedelta(seconds=window_seconds)
    verdict = "[green]yes[/green]" if on_time else "[red]NO[/red]"
    console.print(f"drift injected at {drift_starts:%H:%M:%S}; alert within one window of it: {verdict}")
    return on_time and bool(request.verified)


def window_table(client: httpx.Client, model: str) -> Table:
    """Per-window statistics of one model, as the API serves them."""
    columns: dict[str, dict[str, dict[str, Any]]] = {}
    for family, metric in (
        ("latency", "count"),
        ("latency", "latency_p95_ms"),
        ("cost", "cost_usd"),
        ("drift", "dataset_drift"),
        ("quality", "thumbs_up_rate"),
    ):
        params = {"model": model, "metric": metric, "dimension": ""}
        for row in client.get(f"/v1/stats/{family}", params=params).raise_for_status().json():
            columns.setdefault(row["window_start"], {})[metric] = row
    drifted: dict[str, list[str]] = {}
    params = {"model": model, "metric": "family_drift"}
    for row in client.get("/v1/stats/drift", params=params).raise_for_status().json():
        drifted.setdefault(row["window_start"], [])
        if row["flagged"]:  # worded as the alert words it: the family's own columns, not Evidently's share
            drifted[row["window_start"]].append(family_words(row["dimension"], row["details"]))
    table = Table(
        "window (UTC)",
        "calls",
        "p95 latency",
        "cost",
        "drift (family rule: drifted of tested columns)",
        "Evidently share",
        "thumbs-up rate",
        title=f"per-window statistics of {model}",
    )

    def cell(row: dict[str, Any] | None, fmt: str) -> str:
        if row is None:
            return "–"
        text = fmt.format(row["value"])
        return f"[bold red]{text} ⚠[/bold red]" if row["flagged"] else text

    def families(names: list[str] | None) -> str:
        if names is None:
            return "–"
        return f"[bold red]{escape('; '.join(sorted(names)))} ⚠[/bold red]" if names else "none"

    for start in sorted(columns):
        row = columns[start]
        table.add_row(
            start[11:19],
            cell(row.get("count"), "{:.0f}"),
            cell(row.get("latency_p95_ms"), "{:.0f} ms"),
            cell(row.get("cost_usd"), "${:.4f}"),
            families(drifted.get(start)),
            cell(row.get("dataset_drift"), "{:.0%}"),
            cell(row.get("thumbs_up_rate"), "{:.0%}"),
        )
    return table


def keeps_serving(*, serve: bool) -> bool:
    """A person is at the terminal (stdin is a TTY) and did not pass ``--no-serve``."""
    return serve and sys.stdin.isatty()


def loopwatch_command() -> str:
    """How a person at this shell runs the loopwatch that runs now: ``loopwatch`` when that name on PATH
    is this one, else its script's path (``.venv/bin/loopwatch`` after ``scripts/demo``, which never puts
    the venv on PATH), else ``python -m loopwatch`` with this interpreter."""
    script = Path(sys.executable).parent / "loopwatch"
    on_path = shutil.which("loopwatch")
    if on_path is not None and (not script.exists() or Path(on_path).resolve() == script.resolve()):
        return "loopwatch"
    if not script.exists():
        return f"{sys.executable} -m loopwatch"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def serve_dashboard(console: Console, url: str, token: str, workdir: Path, *, serve: bool) -> None:
    """Keep serving the dashboard until Ctrl-C when a person is at the terminal (stdin is a TTY and not
    ``--no-serve``); otherwise (CI, scripts: they never wait) say how to serve the data the demo leaves."""
    console.rule("[bold]dashboard")
    if not keeps_serving(serve=serve):
        console.print(
            f"the demo's server has stopped; its data stays in {workdir}. To look at it in the dashboard, run\n"
            f"  LOOPWATCH_DATA_DIR={workdir} {loopwatch_command()} serve\n"
            f"then open {SERVE_AFTERWARDS_URL}/ui (the alert's links lead there too) and sign in with the demo "
            f"project key: {token}\n"
            f"(delete {workdir} when you are done)",
            soft_wrap=True,
        )
        return
    console.print(f"open {url}/ui and sign in with the demo project key: {token}", soft_wrap=True)
    console.print("serving the dashboard until Ctrl-C …")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")


def run_demo(console: Console, *, events: int, batch: int, data_dir: Path | None, serve: bool = True) -> int:
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="loopwatch-demo-"))
    port = free_port()
    settings = demo_settings(workdir, port, keeps_serving=keeps_serving(serve=serve))
    configure_logging(settings)
    console.rule("[bold]loopwatch demo")
    console.print(f"data: {workdir} (chDB, embedded mode)")
    server = BackgroundServer(serving_app(settings), port).start()
    try:
        runtime: Runtime = server.app.state.runtime
        token = runtime.keys.create(PROJECT, "demo").token
        console.print(f"service on {server.url}, project key created for [bold]{PROJECT}[/bold]")
        headers = {"authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=60) as client,
            WebhookReceiver(WEBHOOK_SECRET) as receiver,
        ):
            monitor = create_monitor(client, receiver)
            console.print(
                f"monitor [bold]{monitor['name']}[/bold]: alert when a drift family (features, prompt, "
                f"response, embedding) is flagged → {receiver.url}"
            )
            # event time ends now (never ahead of the server's clock) and starts on a window boundary
            now = datetime.now(UTC)
            start = now - timedelta(seconds=events / RATE_PER_SECOND)
            start -= timedelta(seconds=start.timestamp() % settings.window_seconds)
            traffic = Traffic(PROJECT, start=start, rate_per_second=RATE_PER_SECOND, drift_at=events // 2)
            sent, sent_feedback = stream_traffic(client, traffic, events, batch, console)
            _wait_written(runtime)
            _close_windows(runtime)
            console.print(window_table(client, DEMO_MODEL))
            drift_starts = start + timedelta(seconds=(events // 2) / traffic.rate_per_second)
            alerted = show_alert(console, receiver, drift_starts, settings.window_seconds)
            retrains = client.get("/v1/retrain-requests").raise_for_status().json()
            if retrains:
                console.print(f"retraining requested after 3 drifted windows: {retrains[0]['dataset']}")
            models, kinds, joined = read_back(client)
        code = _summary(console, sent, sent_feedback, models, kinds, joined) or (0 if alerted else 1)
        serve_dashboard(console, server.url, token, workdir, serve=serve)
    finally:
        server.stop()
    return code


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
        table.add_row(
            row["model"], ", ".join(row["versions"]), str(row["inferences"]), str(row["errors"]), str(row["feedback"])
        )
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
        result.add_row(
            what, str(expected), str(actual), "[green]yes[/green]" if expected == actual else "[red]NO[/red]"
        )
    console.print(result)
    console.print("[bold green]all counts match[/bold green]" if ok else "[bold red]counts differ[/bold red]")
    return 0 if ok else 1
