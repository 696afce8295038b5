"""Shared fixtures: one real chDB engine per test session, a fresh database per test module.

chDB allows one engine (one data path) per process, so isolation comes from databases, not paths.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from schemas.settings import Settings
from streams.runtime import Runtime
from streams.storage import Storage
from tests.kafka_fixtures import kafka_bootstrap, kafka_topic_prefix  # noqa: F401 - one broker per session


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loopwatch-data")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "clickhouse_database": f"t_{uuid.uuid4().hex[:12]}",
        "kafka_bootstrap": None,
        "batch_max_seconds": 0.05,
        "log_format": "json",
        "log_level": "warning",
        "group_wait_seconds": 0,  # alerts go out at once; grouping tests set their own wait
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def storage(settings: Settings) -> Iterator[Storage]:
    store = Storage(settings)
    store.migrate()
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")


class Api:
    """A running app (real FastAPI app, real embedded runner, real chDB) with helpers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def services(self) -> Runtime:
        return self.client.app.state.runtime  # type: ignore[attr-defined,no-any-return]

    def key(self, project: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.services.keys.create(project, 'test').token}"}

    def wait_written(self) -> None:
        """Block until everything accepted so far is in ClickHouse."""
        runner = self.services.runner
        assert runner is not None
        self.client.portal.call(runner.wait_idle)  # type: ignore[union-attr]

    async def wait_written_stats(self) -> None:
        """Close due windows and refresh late-feedback quality now (no debounce)."""
        runner = self.services.runner
        assert runner is not None
        await asyncio.to_thread(runner.pipeline.close_windows, force_quality=True)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")  # after the final flush
