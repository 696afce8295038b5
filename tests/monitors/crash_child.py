"""A loopwatch process for the crash tests, run as ``python -m tests.monitors.crash_child <phase>``.

chDB keeps one engine per process, so a restart on the same data directory has to be a new process;
the test starts this one, kills it with SIGKILL and starts it again. Settings come from the
``LOOPWATCH_*`` environment, as in production. Phases:

``fire <url>...``
    Create a drift monitor with a signed webhook channel per URL, start ``Monitoring`` and hand it a
    drifted window through the stats hook (``on_rows``, from a worker thread), as a worker does. Once
    every channel whose receiver answers has its success stored, print ``{"alert_id": …}`` and wait
    (the other deliveries hang) until killed.
``serve [--ack <alert_id>]``
    Optionally acknowledge the alert first (as the API does), then start the embedded service
    (``streams.runtime.start_runtime``, what ``loopwatch serve`` runs), stop it gracefully (which waits
    for the deliveries it resumed) and print the alert's stored status and delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from loopwatch._logs import configure_logging
from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.monitors import AlertStore, Monitoring
from streams.runtime import start_runtime
from streams.storage import Storage
from streams.storage import alerts as alert_rows
from tests.monitors.conftest import drift_rows, webhook
from tests.waiting import wait_until

PROJECT = "shop"
DRIFT = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
}


def _say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


async def fire(settings: Settings, urls: list[str], answered: int) -> None:
    """Fire one alert to ``urls``; report once the first ``answered`` channels are stored delivered."""
    storage = Storage(settings)
    storage.migrate()
    monitoring = Monitoring(storage, settings)
    monitoring.store.create(PROJECT, MonitorCreate.model_validate({**DRIFT, "channels": [webhook(u) for u in urls]}))
    await monitoring.start()
    await asyncio.to_thread(monitoring.on_rows, drift_rows(0))
    (alert,) = alert_rows.listed(monitoring.alerts.storage, PROJECT)

    def answered_delivered() -> bool:
        found = alert_rows.detail(monitoring.alerts.storage, PROJECT, alert.alert_id)
        assert found is not None
        return sum(target.status == "delivered" for target in found.delivery.targets) >= answered

    await asyncio.to_thread(wait_until, answered_delivered, f"{answered} channels stored delivered", 120)
    _say({"alert_id": alert.alert_id})
    await asyncio.Event().wait()  # the hanging deliveries stay in flight until the test kills us


async def serve(settings: Settings, ack: str | None) -> None:
    storage = Storage(settings)
    storage.migrate()
    alerts = AlertStore(storage)
    if ack is not None:
        alerts.ack(PROJECT, ack, by="oncall")
    runtime = await start_runtime(settings, storage)
    await runtime.stop(close_storage=False)
    (alert,) = alert_rows.listed(alerts.storage, PROJECT)
    _say({"status": alert.status, "targets": [target.status for target in alert.delivery.targets]})
    storage.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crash_child")
    phases = parser.add_subparsers(dest="phase", required=True)
    fire_parser = phases.add_parser("fire")
    fire_parser.add_argument("urls", nargs="+")
    fire_parser.add_argument("--answered", type=int, default=0, help="channels whose receiver answers")
    serve_parser = phases.add_parser("serve")
    serve_parser.add_argument("--ack")
    args = parser.parse_args(argv)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    configure_logging(settings)  # logs go to stderr; stdout carries only the reports
    if args.phase == "fire":
        asyncio.run(fire(settings, args.urls, args.answered))
    else:
        asyncio.run(serve(settings, args.ack))


if __name__ == "__main__":
    main(sys.argv[1:])
