"""A loopwatch process for the feedback-loop crash tests: ``python -m tests.api.loop_crash_child <phase>``.

chDB keeps one engine per process, so a restart on the same data directory has to be a new process;
the test starts this one, kills it with SIGKILL and starts it again. Settings come from the
``LOOPWATCH_*`` environment, as in production. Phases:

``retrain <url>``
    Store four calls with corrections and a drift monitor (``retrain_after`` 1, a webhook to ``url``),
    start ``Monitoring`` and hand it a drifted window: the retraining request fires and its process
    snapshots the training selector. Once the snapshot's rows are copied and before its version is
    committed, print ``{"request_id": …}`` and stay there until killed.
``serve``
    Start the embedded service (``streams.runtime.start_runtime``, what ``loopwatch serve`` runs), which
    resumes what the killed process owed, stop it gracefully (it waits for the deliveries it resumed),
    and print every dataset version with the SHA-256 of its download's bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import threading
from datetime import timedelta

from loopwatch._logs import configure_logging
from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.datasets import render
from streams.monitors import Monitoring
from streams.runtime import start_runtime
from streams.storage import Storage
from streams.storage.datasets import DatasetStore, DatasetVersion
from tests.api.test_datasets import RETRAIN_MONITOR
from tests.monitors.conftest import SECRET, drift_rows, webhook, window

PROJECT = "shop"


def _say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


class StallingStore(DatasetStore):
    """The real store, stopped for good right before a version is committed (where the kill lands)."""

    def commit(self, version: DatasetVersion) -> None:
        _say({"request_id": version.request_id, "rows": version.row_count})
        threading.Event().wait()


def _seed(storage: Storage) -> None:
    early = window(0)[0] - timedelta(hours=1)  # inside the request's training selector
    storage.insert_rows(
        "inferences",
        ["project", "event_id", "model", "timestamp", "prompt", "response"],
        [[PROJECT, f"r-{i}", "m1", early + timedelta(minutes=i), f"q{i}", f"a{i}"] for i in range(4)],
    )
    storage.insert_rows(
        "feedback",
        ["project", "feedback_id", "inference_id", "timestamp", "kind", "text"],
        [
            [PROJECT, f"fix-{i}", f"r-{i}", early + timedelta(minutes=i, seconds=5), "correction", f"fixed {i}"]
            for i in range(4)
        ],
    )


async def retrain(settings: Settings, url: str) -> None:
    storage = Storage(settings)
    storage.migrate()
    _seed(storage)
    monitoring = Monitoring(storage, settings)
    monitoring.alerts.datasets = StallingStore(storage, monitoring.alerts.claims)
    monitor = MonitorCreate.model_validate({**RETRAIN_MONITOR, "channels": [webhook(url, SECRET)]})
    monitoring.store.create(PROJECT, monitor)
    await monitoring.start()
    await asyncio.to_thread(monitoring.on_rows, drift_rows(0))  # stalls in the snapshot's commit


async def serve(settings: Settings) -> None:
    storage = Storage(settings)
    storage.migrate()
    runtime = await start_runtime(settings, storage)
    await runtime.stop(close_storage=False)
    store = DatasetStore(storage)
    _say(
        [
            {
                "name": v.name,
                "version": v.version,
                "request_id": v.request_id,
                "rows": v.row_count,
                "sha256": v.sha256,
                "download_sha256": hashlib.sha256(b"".join(render(store, v))).hexdigest(),
            }
            for v in store.versions(PROJECT)
        ]
    )
    storage.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="loop_crash_child")
    phases = parser.add_subparsers(dest="phase", required=True)
    phases.add_parser("retrain").add_argument("url")
    phases.add_parser("serve")
    args = parser.parse_args(argv)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    configure_logging(settings)  # logs go to stderr; stdout carries only the reports
    if args.phase == "retrain":
        asyncio.run(retrain(settings, args.url))
    else:
        asyncio.run(serve(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
