"""Benchmark: scale-out — events/s end to end with 1, 2 and 3 ``loopwatch worker`` processes sharing one
ClickHouse, and the pause a worker's death causes.

What is measured
    A real Apache Kafka broker (``scripts/kafka``, as ``kafka_e2e.py``) and, per run, a fresh
    ClickHouse: ``tests/ch_endpoint.py`` (chDB behind ClickHouse's HTTP interface, in its own process;
    production uses a ClickHouse server), reached by every worker through ``LOOPWATCH_CLICKHOUSE_DSN``
    over HTTP — the deployment's code path. Topics have 4 partitions.

    1. throughput, for 1, 2 and 3 workers: N (default 400,000) realistic inference events
       (``loopwatch.demo.traffic.Traffic``, 16 models so every partition gets traffic; event time
       spread at ``--event-rate`` per second) are produced to Kafka with the ``Emitter`` once, before
       any worker starts (a backlog); each run reads all of it with a consumer group of its own into a
       fresh ClickHouse (a new endpoint process), with the schema migrated before the clock. The
       backlog is large so that most of it is left when the last worker has joined. Then the workers are
       started and the clock runs until ``count()`` reaches N; ``count() FINAL`` and
       ``uniqExact(event_id)`` must equal N. Reported: events/s from the moment the consumer group is
       Stable with every worker (``describe_groups``) to the last row ("steady": the rows stored after
       that point over the time; process start-up, the group join and its rebalances are reported
       separately), and CPU seconds per 1,000 of those events of the worker processes and of the
       ClickHouse endpoint process over the same span, from ``/proc/<pid>/stat`` (utime + stime), and
       the INSERT statements ClickHouse ran in that span (``system.events`` ``InsertQuery``; all
       tables, statistics and claims included) per second and events per insert.
    2. rebalance pause: 2 workers consume a backlog; when a third of it is stored one worker is killed
       with SIGKILL. Reported: seconds from the kill until every partition's committed offset moves
       again (the dead worker's partitions resume on the survivor), with the default
       ``LOOPWATCH_KAFKA_SESSION_TIMEOUT_SECONDS``.

The broker, the ClickHouse endpoint, the workers and this script share one 2-core machine, so more
workers add CPU contention, not cores: the figures say how the work divides and what one event costs,
not how a cluster of machines scales. Baseline in the same run: the 1-worker figure.

Run from the repository root::

    .venv/bin/python bench/scaleout.py            # ~8 min
    .venv/bin/python bench/scaleout.py --quick    # 100k events
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # noqa: F401 - puts the repository root on sys.path first
from _common import console, progress, rate
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka_e2e import Broker
from rich.table import Table

from loopwatch import Emitter
from loopwatch.demo.traffic import Traffic
from schemas.settings import Settings
from schemas.topics import Topics
from streams.kafka.admin import ensure_topics
from streams.storage import Storage
from tests.scaleout.topology import Topology

PROJECT = "bench"
MODELS = 16
PARTITIONS = 4
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def produce(bootstrap: str, prefix: str, events: int, event_rate: float) -> None:
    """The backlog: ``events`` Traffic events over 16 models, acknowledged by Kafka (not timed)."""
    asyncio.run(
        ensure_topics(
            Settings(_env_file=None, kafka_bootstrap=bootstrap, topic_prefix=prefix, kafka_partitions=PARTITIONS)
        )
    )
    traffic = Traffic(
        PROJECT, seed=11, start=datetime.now(UTC) - timedelta(seconds=events / event_rate), rate_per_second=event_rate
    )
    emitter = Emitter(PROJECT, kafka_bootstrap=bootstrap, topic_prefix=prefix, max_buffer=events + 1)
    with progress() as bar:
        task = bar.add_task("producing the backlog (not timed)", total=events)
        for i in range(events):
            item = traffic.inference(i)
            item.pop("project")
            item["model"] = f"m{i % MODELS}"
            item["timestamp"] = datetime.fromisoformat(item["timestamp"])
            emitter.log_inference(**{key: value for key, value in item.items() if value is not None})
            if i % 10_000 == 0:
                bar.update(task, completed=i)
        assert emitter.flush(timeout=120), "the backlog was not acknowledged"
        bar.update(task, completed=events)
    emitter.close()


def reader(topology: Topology, tmp: Path) -> Storage:
    return Storage(Settings(_env_file=None, data_dir=tmp / "reader", clickhouse_dsn=topology.endpoint.dsn("loopwatch")))


def inserts(storage: Storage) -> int:
    """INSERT statements the ClickHouse process has run so far (its ``InsertQuery`` profile event)."""
    return int(storage.scalar("SELECT value FROM system.events WHERE event = 'InsertQuery'") or 0)


@dataclass
class Run:
    workers: int
    events: int  # stored after the group became stable
    startup: float  # workers started → the group stable with every worker (start-up + join + rebalances)
    steady: float  # group stable → all rows stored
    worker_cpu: float  # CPU seconds of all workers while steady
    clickhouse_cpu: float  # of the ClickHouse endpoint, same span
    inserts: int  # INSERT statements ClickHouse ran, same span (every table: events, statistics…)


def throughput(bootstrap: str, tmp: Path, prefix: str, workers: int, events: int) -> Run:
    """``workers`` new processes, a new consumer group and a fresh ClickHouse on the shared backlog."""
    group = f"{prefix}-{workers}w"
    with Topology(
        tmp / group, bootstrap, prefix, group=group, kafka_partitions=str(PARTITIONS), log_level="warning"
    ) as topology:
        topology.cli("keys", "create", "--project", PROJECT)  # migrates the schema before the clock
        storage = reader(topology, tmp)
        db = storage.database
        started = time.monotonic()
        procs = [topology.start_worker() for _ in range(workers)]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        stable, at_stable, count, cpu_stable, inserts_stable = 0.0, 0, 0, (0.0, 0.0), 0
        with progress() as bar:
            task = bar.add_task(f"{workers} worker(s) consuming", total=events)
            while count < events:
                time.sleep(0.25)
                if not stable and stable_members(admin, topology.group) == workers:
                    stable = time.monotonic()
                    at_stable = int(storage.scalar(f"SELECT count() FROM {db}.inferences") or 0)
                    cpu_stable = sum(cpu_seconds(p.pid) for p in procs), cpu_seconds(topology.endpoint.proc.pid)
                    inserts_stable = inserts(storage)
                count = int(storage.scalar(f"SELECT count() FROM {db}.inferences") or 0)
                bar.update(task, completed=count)
                if time.monotonic() - started > 900:
                    raise SystemExit(f"{workers} worker(s): only {count} of {events} rows after 15 min")
        done = time.monotonic()
        admin.close()
        if not stable or at_stable > events * 0.8:
            raise SystemExit(f"the group was stable only at {at_stable} of {events} rows: use more --events")
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_stable[0]  # the steady part only
        ch_cpu = cpu_seconds(topology.endpoint.proc.pid) - cpu_stable[1]
        insert_count = inserts(storage) - inserts_stable
        final = storage.scalar(f"SELECT count() FROM {db}.inferences FINAL")
        unique = storage.scalar(f"SELECT uniqExact(event_id) FROM {db}.inferences")
        assert final == events, (final, events)
        assert unique == events, (unique, events)
        storage.close()
    return Run(workers, events - at_stable, stable - started, done - stable, worker_cpu, ch_cpu, insert_count)


def committed(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic``."""
    offsets = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def stable_members(admin: KafkaAdminClient, group: str) -> int:
    """Members of ``group`` once it is Stable (assignments handed out), else 0."""
    try:
        info = admin.describe_groups([group]).get(group, {})
    except KafkaError:  # no coordinator yet: the group is still forming
        return 0
    state = str(info.get("group_state") or info.get("state") or "")
    return len(info.get("members") or []) if state.lower() == "stable" else 0


def rebalance_pause(bootstrap: str, tmp: Path, prefix: str, events: int) -> float:
    topic = Topics(prefix).inference
    group = f"{prefix}-rebalance"
    with Topology(
        tmp / group, bootstrap, prefix, group=group, kafka_partitions=str(PARTITIONS), log_level="warning"
    ) as topology:
        topology.cli("keys", "create", "--project", PROJECT)
        storage = reader(topology, tmp)
        procs = [topology.start_worker() for _ in range(2)]
        with console.status("2 workers consuming; the kill comes at a third of the backlog"):
            while int(storage.scalar(f"SELECT count() FROM {storage.database}.inferences") or 0) < events // 3:
                time.sleep(0.2)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        at_kill = committed(admin, topology.group, topic)
        topology.kill_worker(procs[0])
        killed = time.monotonic()
        with console.status("waiting for every partition to move again"):
            while True:
                now = committed(admin, topology.group, topic)
                if len(now) == PARTITIONS and all(now[p] > at_kill.get(p, -1) for p in range(PARTITIONS)):
                    admin.close()
                    return time.monotonic() - killed
                if time.monotonic() - killed > 300:
                    raise SystemExit(f"partitions did not resume within 300 s: {at_kill} → {now}")
                time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--event-rate", type=float, default=1_000.0, help="events per second of event time")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k events")
    args = parser.parse_args()
    if args.quick:
        args.events = 100_000
    console.rule("[bold]loopwatch scale-out benchmark (workers sharing one ClickHouse over HTTP)")
    console.print(f"{os.cpu_count()} CPUs, shared by the broker, ClickHouse endpoint, workers and this script")
    tmp = Path(tempfile.mkdtemp(prefix="lw-scaleout-"))
    broker = Broker()
    runs: list[Run] = []
    try:
        with console.status(f"starting the Kafka broker on port {broker.port} (scripts/kafka)"):
            bootstrap = broker.start()
        prefix = f"scale{uuid.uuid4().hex[:8]}"
        produce(bootstrap, prefix, args.events, args.event_rate)  # one backlog, read by every run's group
        for workers in (1, 2, 3):
            run = throughput(bootstrap, tmp, prefix, workers, args.events)
            console.print(
                f"  {workers} worker(s): {rate(run.events, run.steady):,.0f} ev/s steady, start-up {run.startup:.1f} s"
            )
            runs.append(run)
        pause = rebalance_pause(bootstrap, tmp, prefix, args.events)
    finally:
        with console.status("stopping and wiping the broker"):
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    base = rate(runs[0].events, runs[0].steady)
    table = Table(title=f"end to end, {args.events:,} events per run, {PARTITIONS} partitions (read back exact)")
    for column in (
        "workers",
        "events/s (steady)",
        "vs 1 worker",
        "start-up + join s",
        "worker CPU s / 1k ev",
        "ClickHouse CPU s / 1k ev",
        "inserts/s",
        "events per insert",
    ):
        table.add_column(column, justify="right")
    for run in runs:
        value = rate(run.events, run.steady)
        table.add_row(
            str(run.workers),
            f"{value:,.0f}",
            f"{value / base:.2f}x",
            f"{run.startup:.1f}",
            f"{run.worker_cpu / run.events * 1000:.3f}",
            f"{run.clickhouse_cpu / run.events * 1000:.3f}",
            f"{rate(run.inserts, run.steady):,.1f}",
            f"{run.events / max(run.inserts, 1):,.0f}",
        )
    console.print(table)
    console.print(
        f"rebalance pause after kill -9 of one of 2 workers: {pause:.1f} s "
        f"(session timeout {Settings(_env_file=None).kafka_session_timeout_seconds:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
