"""Two processes resuming the same retraining request whose snapshot is pending make one version.

Each "process" is its own dataset store with its own claim owner on the one real chDB engine. A barrier
holds both right after their "is there a version for this request?" read, so both see none before
either makes one: only the request's ``snapshot`` claim can keep the version single.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

from schemas.events import RetrainEvent
from streams.datasets import render, snapshot
from streams.monitors.training import request_version
from streams.storage import Claims, Storage
from streams.storage.datasets import DatasetQuery, DatasetStore, DatasetVersion

T0 = datetime(2026, 6, 1, tzinfo=UTC)


class RacingDatasetStore(DatasetStore):
    """The real store; its first lookup of the request's version waits for the other process's."""

    def __init__(self, storage: Storage, owner: str, barrier: threading.Barrier) -> None:
        super().__init__(storage, Claims(storage, owner=owner))
        self._barrier: threading.Barrier | None = barrier

    def for_request(self, project: str, request_id: str) -> DatasetVersion | None:
        found = super().for_request(project, request_id)
        if self._barrier is not None:
            self._barrier.wait(timeout=30)
            self._barrier = None
        return found


def _seed(storage: Storage) -> None:
    storage.insert_rows(
        "inferences",
        ["project", "event_id", "model", "timestamp", "prompt", "response"],
        [["shop", f"c{i}", "m1", T0 + timedelta(minutes=i), f"q{i}", f"a{i}"] for i in range(5)],
    )
    storage.insert_rows(
        "feedback",
        ["project", "feedback_id", "inference_id", "timestamp", "kind", "text"],
        [
            ["shop", f"f{i}", f"c{i}", T0 + timedelta(minutes=i, seconds=5), "correction", f"fixed {i}"]
            for i in range(5)
        ],
    )


def test_racing_resumes_of_a_pending_snapshot_make_one_version(storage: Storage) -> None:
    _seed(storage)
    retrain = RetrainEvent(
        project="shop",
        model="m1",
        reason=["a1"],
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        dataset={"params": {"model": "m1", "kind": "correction"}},
    )
    barrier = threading.Barrier(2)
    stores = [RacingDatasetStore(storage, f"host-{name}:1:x", barrier) for name in ("a", "b")]
    made: list[DatasetVersion | None] = [None, None]

    def resume(i: int) -> None:
        made[i] = request_version(stores[i], retrain)

    threads = [threading.Thread(target=resume, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    versions = DatasetStore(storage).versions("shop")
    assert [(v.name, v.version, v.request_id) for v in versions] == [("retrain-m1", 1, retrain.request_id)]
    named = {(v.version, v.sha256) for v in made if v is not None}
    assert named == {(1, versions[0].sha256)}  # both name it: the loser waited for the winner's version
    body = b"".join(render(stores[0], versions[0]))
    assert hashlib.sha256(body).hexdigest() == versions[0].sha256
    assert versions[0].row_count == 5


class NumberingStore(DatasetStore):
    """The real store; a version number, once claimed, waits until the other snapshot has claimed one."""

    def __init__(self, storage: Storage, barrier: threading.Barrier) -> None:
        super().__init__(storage)
        self._barrier = barrier

    def claim_version(self, project: str, name: str) -> int:
        number = super().claim_version(project, name)
        self._barrier.wait(timeout=30)
        return number


def test_two_snapshots_of_one_name_in_one_process_get_distinct_versions(storage: Storage) -> None:
    _seed(storage)
    store = NumberingStore(storage, threading.Barrier(2))  # one process: one claim owner
    threads = [
        threading.Thread(target=snapshot, args=(store, "shop", "both", DatasetQuery(model="m1"), "jsonl"))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(v.version for v in DatasetStore(storage).versions("shop", "both")) == [1, 2]
