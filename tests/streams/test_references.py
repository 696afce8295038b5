"""One source of truth for drift references: the API and the engine of a process share one store, and a
default (first-window) reference never replaces an uploaded or pinned one, even from another process."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.ddl import migrations
from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.stats.references import ReferenceStore, columns_from_records, profile_from_columns
from streams.storage import Storage, ch_time
from tests.conftest import Api, make_settings

WINDOW = 60
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
UPLOAD_ROWS = 300


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir, window_seconds=WINDOW, allowed_lateness_seconds=0, reference_min_rows=50, drift_share=0.1
    )


def _dataset(seed: int = 1) -> list[dict[str, Any]]:
    """The uploaded reference: ages around 60 (traffic below is around 40, so drift against it shows)."""
    rng = random.Random(seed)
    return [{"age": rng.gauss(60, 5), "plan": rng.choice(["a", "b"])} for _ in range(UPLOAD_ROWS)]


def _events(window: int, n: int, *, project: str = "") -> list[dict[str, Any]]:
    rng = random.Random(window)
    return [
        {
            "event_id": f"w{window}-{i}",
            "model": "m",
            "timestamp": (T0 + timedelta(seconds=window * WINDOW + i * WINDOW / n)).isoformat(),
            "latency_ms": 100.0,
            "features": {"age": rng.gauss(40, 5), "plan": rng.choice(["a", "b"])},
            **({"project": project} if project else {}),
        }
        for i in range(n)
    ]


def _post(api: Api, headers: dict[str, str], items: list[dict[str, Any]]) -> None:
    response = api.client.post("/v1/inferences", content=orjson.dumps(items), headers=headers)
    assert response.status_code == 202, response.text


def _upload(api: Api, headers: dict[str, str]) -> None:
    body = "\n".join(orjson.dumps(row).decode() for row in _dataset()).encode()
    response = api.client.post("/v1/models/m/reference", params={"format": "jsonl"}, headers=headers, content=body)
    assert response.status_code == 201, response.text


def _close(api: Api) -> None:
    api.wait_written()
    api.client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]


def _dataset_drift(storage: Storage, project: str) -> dict[datetime, dict[str, Any]]:
    """window start -> details of its dataset_drift row."""
    rows = storage.rows(
        f"SELECT window_start, details FROM {storage.database}.window_stats FINAL WHERE project = {{p:String}} "
        "AND family = 'drift' AND metric = 'dataset_drift'",
        {"p": project},
    )
    return {row["window_start"].replace(tzinfo=UTC): orjson.loads(row["details"]) for row in rows}


def _assert_upload_is_active(storage: Storage, project: str) -> None:
    fresh = ReferenceStore(storage).get(project, "m")  # no cache: what every process will read
    assert fresh is not None
    assert (fresh.kind, fresh.rows) == ("dataset", UPLOAD_ROWS)


def _window(n: int) -> datetime:
    return T0 + timedelta(seconds=n * WINDOW)


def _row(project: str, kind: str, **extra: Any) -> bytes:
    """A references row as a process writes it (a profile of 100 traffic-like rows)."""
    profile = profile_from_columns(columns_from_records([{"age": 40.0 + i % 9} for i in range(100)]))
    row = {
        "project": project,
        "model": "m",
        "kind": kind,
        "rows": 100,
        "profile": orjson.dumps(profile.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        **extra,
    }
    return orjson.dumps([row])


class TestOneStorePerProcess:
    """An upload through the API is what the next windows are compared with, at once."""

    def test_upload_then_immediate_traffic(self, api: Api) -> None:
        headers = api.key("up")
        _upload(api, headers)
        _post(api, headers, _events(0, 100) + _events(1, 100) + _events(5, 1))
        _close(api)
        assert api.client.get("/v1/models/m/reference", headers=headers).json()["kind"] == "dataset"
        _assert_upload_is_active(api.services.storage, "up")
        drift = _dataset_drift(api.services.storage, "up")
        assert set(drift) == {_window(0), _window(1)}  # no window became the reference
        assert all(d["reference_kind"] == "dataset" and d["reference_rows"] == UPLOAD_ROWS for d in drift.values())
        assert all("feature.age" in d["drifted_columns"] for d in drift.values())

    def test_upload_while_the_engine_caches_none(self, api: Api) -> None:
        headers = api.key("cached")
        _post(api, headers, _events(0, 10) + _events(1, 1))  # window 0: too few rows for a default reference
        _close(api)
        assert api.client.get("/v1/models/m/reference", headers=headers).status_code == 404  # "none" is cached now
        _upload(api, headers)
        _post(api, headers, _events(2, 100) + _events(3, 100) + _events(6, 1))
        _close(api)
        _assert_upload_is_active(api.services.storage, "cached")
        drift = _dataset_drift(api.services.storage, "cached")
        assert set(drift) == {_window(1), _window(2), _window(3)}  # window 1 closed after the upload
        assert all(d["reference_kind"] == "dataset" for d in drift.values())


class TestExplicitWinsAcrossProcesses:
    """Another process's stale cache or late default write cannot shadow an upload."""

    def test_worker_with_a_cached_none_keeps_the_upload(self, storage: Storage, settings: Settings) -> None:
        worker = Pipeline(storage, settings)  # a Kafka worker, say
        assert worker.stats is not None
        assert worker.stats.references.get("x", "m") is None  # cached for a while
        api_process = ReferenceStore(storage)
        api_process.save("x", "m", "dataset", columns_from_records(_dataset()))
        worker.accept_raw("inference", orjson.dumps(_events(0, 100, project="x") + _events(1, 100, project="x")))
        worker.accept_raw("inference", orjson.dumps(_events(5, 1, project="x")))
        worker.flush()
        worker.close_windows()
        _assert_upload_is_active(storage, "x")
        drift = _dataset_drift(storage, "x")
        assert set(drift) == {_window(0), _window(1)}
        assert all(d["reference_kind"] == "dataset" for d in drift.values())

    def test_default_written_after_an_upload_does_not_shadow_it(self, storage: Storage) -> None:
        ReferenceStore(storage).save("y", "m", "dataset", columns_from_records(_dataset()))
        late_default = _row("y", "first_window", explicit=0, range_start=ch_time(T0), range_end=ch_time(_window(1)))
        storage.insert_json("references", late_default)  # a worker that had not seen the upload
        storage.command(f"OPTIMIZE TABLE {storage.database}.references FINAL")  # merges keep both slots
        _assert_upload_is_active(storage, "y")
        stale = ReferenceStore(storage)
        active = stale.ensure_first_window(
            "y", "m", columns_from_records(_dataset(2)), range_start=T0, range_end=_window(1)
        )
        assert active.kind == "dataset"

    def test_uploads_made_before_the_upgrade_keep_winning(self, settings: Settings) -> None:
        storage = Storage(settings)
        db = storage.database
        storage.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        try:
            for migration in migrations():
                if migration.version < 5:
                    for statement in migration.render(db):
                        storage.command(statement)
            storage.insert_json("references", _row("z", "dataset"))  # uploaded before the upgrade
            storage.migrate()
            late_default = _row("z", "first_window", explicit=0, range_start=ch_time(T0), range_end=ch_time(_window(1)))
            storage.insert_json("references", late_default)
            active = ReferenceStore(storage).get("z", "m")
            assert active is not None
            assert active.kind == "dataset"
        finally:
            storage.command(f"DROP DATABASE IF EXISTS {db}")
