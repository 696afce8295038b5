"""Benchmark: embedded HTTP ingest with redaction on (the default policy, ``mask``) vs off, same run.

What is measured
    The machinery of ``bench/ingest_http.py`` (real app under uvicorn in this process, a spawned load
    generator, wall time from the first request to "all rows readable", exact read-back of every event
    before any figure): ``ingest_http.run_phase`` against two servers started one after the other with
    ``LOOPWATCH_REDACTION_MODE=mask`` and ``=off``, alternating, ``--runs`` times each.

    Events are the demo's traffic (``loopwatch.demo.traffic.Traffic``) with prompts and responses of
    1–2 KB of prose; one event in ``--planted-every`` (default 5) carries planted entities in both texts
    (an e-mail address, a phone number, a card number, an IBAN, an IP address, a secret key). The mask runs read
    back a sample of stored prompts and require every planted value gone.

Also reported
    * the redaction cost per event measured in isolation (``Redactor.inferences`` on the same events,
      one thread), so the end-to-end figure can be read against it.

Target (from the issue): ingest with the default policy at most 15 % slower than without redaction.

Run from the repository root::

    .venv/bin/python bench/redaction.py            # 100k events, 3 runs each
    .venv/bin/python bench/redaction.py --quick    # smoke: 20k events, 1 run each
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # noqa: F401 - puts the repository root on sys.path
import msgspec
import orjson
from _common import console, fmt_runs, median, progress, verdict
from _loadgen import LoadGenerators
from ingest_http import PROJECT, Phase, make_settings, run_phase
from rich.table import Table

from loopwatch._logs import configure_logging
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.traffic import Traffic
from loopwatch.process import serving_app
from schemas.privacy import RedactionPolicy
from schemas.records import InferenceRecord
from schemas.settings import Settings
from streams.allocator import tune_malloc
from streams.privacy import Redactor
from streams.runtime import Runtime
from streams.storage import Storage

MAX_SLOWDOWN = 0.15
WORDS = (
    "the customer asked about their order and wanted to know when the parcel would arrive since the "
    "tracking page has not changed for three days please summarise the conversation and suggest a reply "
    "that apologises for the delay explains the next steps and offers a discount code for the next purchase "
    "our policy allows refunds within thirty days of delivery when the item is unused"
).split()
PLANTED = [
    "ana.lopez+shop@example.co.uk",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "192.168.10.42",
    "AKIAIOSFODNN7EXAMPLE",
]


def prose(rng: random.Random, planted: bool) -> str:
    """1–2 KB of words; with ``planted``, every planted value somewhere in it."""
    size = rng.randint(1024, 2048)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    if planted:
        for value in PLANTED:
            words.insert(rng.randrange(len(words)), value)
    return " ".join(words)


def generate(events: int, batch: int, planted_every: int) -> tuple[list[bytes], list[dict[str, object]]]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    traffic = Traffic(PROJECT, seed=7, start=now - timedelta(seconds=events / 1000), rate_per_second=1000)
    items: list[dict[str, object]] = []
    with progress() as bar:
        task = bar.add_task("generating events (not timed)", total=events)
        for index in range(events):
            item = traffic.inference(index)
            planted = index % planted_every == 0
            item["prompt"], item["response"] = prose(rng, planted), prose(rng, planted)
            items.append(item)
            bar.advance(task)
    return [orjson.dumps(items[i : i + batch]) for i in range(0, events, batch)], items


def one_run(loadgen: LoadGenerators, data_dir: Path, bodies: list[bytes], events: int, mode: str) -> Phase:
    settings = make_settings(data_dir, redaction_mode=mode)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    try:
        services: Runtime = server.app.state.runtime
        token = services.keys.create(PROJECT, "bench").token
        phase = run_phase(loadgen, server, services, token, bodies, events, PROJECT, f"redaction {mode}")
        sample = services.storage.rows(
            f"SELECT prompt FROM {services.storage.database}.inferences WHERE project = {{p:String}} "
            "AND (position(prompt, '<EMAIL>') > 0 OR position(prompt, '@example.co.uk') > 0) LIMIT 200",
            {"p": PROJECT},
        )
        clear = [row for row in sample if any(value in row["prompt"] for value in PLANTED)]
        if mode == "mask" and (not sample or clear):
            raise SystemExit(f"mask run: {len(clear)} of {len(sample)} sampled prompts hold a planted value")
        if mode == "off" and not clear:
            raise SystemExit("off run: planted values were changed")
    finally:
        server.stop()
    storage = Storage(settings)
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
    storage.close()
    return phase


def isolated_cost(items: list[dict[str, object]], sample: int) -> float:
    """Seconds per event of ``Redactor.inferences`` alone under the default policy."""
    records = [msgspec.convert(item, InferenceRecord) for item in items[:sample]]
    redactor = Redactor(RedactionPolicy())
    started = time.perf_counter()
    redactor.inferences(records)
    return (time.perf_counter() - started) / len(records)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per HTTP request")
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode (alternating; medians reported)")
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=16, help="keep-alive connections per process")
    parser.add_argument(
        "--planted-every", type=int, default=5, help="one event in this many carries the planted entities"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k events, 1 run each")
    args = parser.parse_args()
    tune_malloc()
    if args.quick:
        args.events, args.runs = 20_000, 1
    configure_logging(Settings(log_level="warning"))
    data_dir = Path(tempfile.mkdtemp(prefix="loopwatch-bench-redaction-"))
    console.rule("[bold]loopwatch redaction benchmark (embedded mode, HTTP)")
    bodies, items = generate(args.events, args.batch, args.planted_every)
    console.print(
        f"{args.events:,} events, ~{sum(map(len, bodies)) / args.events:,.0f} bytes each, one in "
        f"{args.planted_every} with planted entities, {args.runs} run(s)"
    )
    loadgen = LoadGenerators(args.procs, args.threads)
    phases: dict[str, list[Phase]] = {"off": [], "mask": []}
    try:
        for index in range(args.runs):
            for mode in ("off", "mask"):
                phases[mode].append(one_run(loadgen, data_dir, bodies, args.events, mode))
                console.print(f"  run {index + 1} {mode}: {phases[mode][-1].per_second:,.0f} events/s")
    finally:
        loadgen.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    cost = isolated_cost(items, 5_000)

    off = median(phase.per_second for phase in phases["off"])
    mask = median(phase.per_second for phase in phases["mask"])
    table = Table(title="HTTP ingest, 1–2 KB prompts and responses (first request → all rows readable)")
    for column in ("redaction", "events/s per run", "median events/s", "server CPU s (median)"):
        table.add_column(column, justify="left" if column == "redaction" else "right")
    for mode, median_rate in (("off", off), ("mask (default)", mask)):
        runs = phases[mode.split()[0]]
        table.add_row(
            mode,
            fmt_runs([phase.per_second for phase in runs]),
            f"{median_rate:,.0f}",
            f"{median(phase.server_cpu for phase in runs):.1f}",
        )
    console.print(table)
    slowdown = 1 - mask / off
    console.print(f"redaction alone: {cost * 1e6:,.0f} µs per event (two 1–2 KB texts, one thread)")
    console.print(
        f"slowdown with the default policy: {slowdown:.1%} (target ≤ {MAX_SLOWDOWN:.0%}): {verdict(slowdown <= MAX_SLOWDOWN)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
