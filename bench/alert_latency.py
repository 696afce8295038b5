"""Time from the first drifted event to the webhook receiving the alert, with real-time traffic.

The real embedded service (API + processors + chDB) runs under uvicorn; a load generator sends
realistic LLM traffic over HTTP *paced in real time* (event time = wall time, 200 events/s in batches
every 0.1 s), a drift monitor with a signed-webhook channel points at a local receiver on 127.0.0.1,
and after a few stationary windows the traffic switches to the drifted regime. Measured: wall time
from sending the first drifted event to the receiver getting the (signature-verified) alert.

Target (issue): at most one window plus 2 s. The budget is printed side by side with each trial and
the ratio measured / budget. Trials place the drift at different offsets inside a window, because a
drift that starts late in a window may only be flagged in the next one.

    .venv/bin/python bench/alert_latency.py            # 3 trials, 5 s windows
    .venv/bin/python bench/alert_latency.py --quick    # 1 trial
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import _common  # noqa: F401 - puts the repo on sys.path
import httpx
import orjson
from rich.console import Console
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.demo.traffic import Traffic
from loopwatch.process import serving_app
from schemas.events import AlertEvent
from schemas.settings import Settings

console = Console(highlight=False, width=140)
MODEL = "gpt-4o-mini"
RATE = 200  # events per second
TICK = 0.1  # seconds between batches


def trial(window: int, lateness: int, offset: float, data_dir: Path) -> dict[str, float | str]:
    port = free_port()
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        clickhouse_database=f"bench_{secrets.token_hex(4)}",
        window_seconds=window,
        allowed_lateness_seconds=lateness,
        batch_max_seconds=0.2,
        drift_share=0.3,
        reference_min_rows=100,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.2,
        log_level="warning",
        public_url=f"http://127.0.0.1:{port}",
    )
    configure_logging(settings)
    secret = secrets.token_hex(16)
    with BackgroundServer(serving_app(settings), port) as server, WebhookReceiver(secret) as receiver:
        token = server.app.state.runtime.keys.create("bench").token
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as client:
            client.post(
                "/v1/monitors",
                json={
                    "monitor_id": "drift",
                    "name": "drift",
                    "scope": MODEL,
                    "family": "drift",
                    "metric": "dataset_drift",
                    "condition": {"type": "flagged"},
                    "cooldown_seconds": 3600,
                    "channels": [{"type": "webhook", "url": receiver.url, "secret": secret}],
                },
            ).raise_for_status()
            # start on a window boundary; drift after 3 full windows plus ``offset`` of a window
            now = time.time()
            time.sleep(window - now % window)
            drift_at_wall = time.time() + (3 + offset) * window
            index, first_drift_sent = 0, None
            traffic = Traffic("bench", seed=1, start=datetime.now(UTC), rate_per_second=10**9)
            deadline = drift_at_wall + 4 * window
            while time.time() < deadline and not receiver.requests:
                batch = []
                for _ in range(int(RATE * TICK)):
                    event = traffic.inference(index)
                    event["model"] = MODEL
                    drifted = time.time() >= drift_at_wall
                    if drifted:
                        traffic.drift_at = 0  # from here on every event is drifted
                        event = {**traffic.inference(index), "model": MODEL}
                    event["timestamp"] = datetime.now(UTC).isoformat()
                    batch.append(event)
                    index += 1
                client.post("/v1/inferences", content=orjson.dumps(batch)).raise_for_status()
                if traffic.drift_at == 0 and first_drift_sent is None:
                    first_drift_sent = time.time()
                time.sleep(TICK)
            received = receiver.wait_for(1, timeout=4 * window)
            arrived = received[0].received_at
    alert = AlertEvent.model_validate_json(received[0].body)
    assert received[0].verified, "the alert's signature must verify"
    assert first_drift_sent is not None
    latency = arrived - first_drift_sent
    return {
        "offset": offset,
        "latency": latency,
        "budget": window + 2.0,
        "window": alert.window_start.strftime("%H:%M:%S"),
        "value": alert.value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=5, help="window seconds")
    parser.add_argument("--lateness", type=int, default=0, help="allowed lateness seconds (adds to the latency)")
    parser.add_argument("--quick", action="store_true", help="one trial")
    args = parser.parse_args()
    offsets = [0.0] if args.quick else [0.0, 0.5, 0.9]
    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-alert-"))
    table = Table(
        "drift starts at",
        "alert latency",
        "budget (window + 2 s)",
        "latency / budget",
        "alerted window",
        "drifted share",
        title=f"first drifted event → webhook, {args.window} s windows, lateness {args.lateness} s, {RATE} events/s",
    )
    for offset in offsets:
        console.print(f"trial: drift at {offset:.0%} of a window …")
        result = trial(args.window, args.lateness, offset, data_dir)
        ratio = result["latency"] / result["budget"]  # type: ignore[operator]
        table.add_row(
            f"{offset:.0%} into a window",
            f"{result['latency']:.2f} s",
            f"{result['budget']:.1f} s",
            f"[{'green' if ratio <= 1 else 'red'}]{ratio:.2f}[/]",
            str(result["window"]),
            f"{result['value']:.0%}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
