"""MonitorStore on real chDB: versioned CRUD, built-in defaults, the YAML loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.monitors import MonitorCreate
from schemas.settings import Settings
from streams.monitors import (
    BuiltinMonitorError,
    MonitorExistsError,
    MonitorFileError,
    Monitoring,
    MonitorStore,
    load_monitors_file,
)
from streams.storage import Storage
from tests.conftest import make_settings
from tests.monitors.conftest import SECRET

P95 = {
    "name": "p95",
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 2000},
}

YAML = """
monitors:
  - monitor_id: checkout-drift
    project: checkout
    name: Checkout drift
    scope: fraud-scorer
    family: drift
    metric: dataset_drift
    condition: {type: flagged}
    severity: critical
    retrain_after: 3
    channels:
      - type: webhook
        url: http://127.0.0.1:9/hooks
        secret: ${LW_TEST_SECRET}
  - monitor_id: checkout-p95
    project: checkout
    name: Slow
    family: latency
    metric: latency_p95_ms
    condition: {type: threshold, operator: gt, value: 1500}
"""


class TestCrud:
    """Create, read, update, delete, each change a new version; projects never see each other."""

    def test_lifecycle(self, monitoring: Monitoring) -> None:
        store = monitoring.store
        created = store.create("shop", MonitorCreate.model_validate({**P95, "monitor_id": "p95"}))
        assert store.get("shop", "p95") == created
        assert store.get("other", "p95") is None
        with pytest.raises(MonitorExistsError):
            store.create("shop", MonitorCreate.model_validate({**P95, "monitor_id": "p95"}))
        updated = store.update("shop", "p95", {"severity": "critical", "enabled": False})
        assert updated is not None
        assert updated.severity == "critical"
        assert updated.created_at == created.created_at
        assert [m.monitor_id for m in store.list("shop") if not m.builtin] == ["p95"]
        assert "p95" not in {m.monitor_id for m in store.active("shop")}  # disabled
        assert store.delete("shop", "p95")
        assert not store.delete("shop", "p95")
        assert store.get("shop", "p95") is None
        assert store.update("shop", "nope", {"name": "x"}) is None

    def test_update_is_validated_whole(self, monitoring: Monitoring) -> None:
        monitoring.store.create("shop", MonitorCreate.model_validate({**P95, "monitor_id": "p95"}))
        with pytest.raises(ValidationError) as caught:
            monitoring.store.update("shop", "p95", {"metric": "dataset_drift"})
        assert caught.value.errors()[0]["loc"] == ("metric",)
        assert monitoring.store.get("shop", "p95").metric == "latency_p95_ms"  # type: ignore[union-attr]

    def test_defaults_are_listed_beside_the_projects_monitors(self, monitoring: Monitoring) -> None:
        store = monitoring.store
        defaults = store.list("fresh")
        assert {m.monitor_id for m in defaults} == {
            "default-family-drift",
            "default-thumbs-drop",
            "default-latency-p95",
            "default-spend-anomaly",
        }
        assert all(m.builtin and not m.channels and m.scope == "*" for m in defaults)
        assert store.get("fresh", "default-latency-p95") is not None
        with pytest.raises(BuiltinMonitorError):
            store.update("fresh", "default-latency-p95", {"name": "x"})
        with pytest.raises(BuiltinMonitorError):
            store.delete("fresh", "default-latency-p95")
        assert len(store.active("fresh")) == 4
        store.create("fresh", MonitorCreate.model_validate(P95))
        # the write dropped the cached list; the built-ins stay, each for the models no monitor covers
        assert [m.name for m in store.active("fresh")] == ["p95", *(m.name for m in defaults)]

    def test_defaults_can_be_switched_off(self, storage: Storage, settings: Settings) -> None:
        off = settings.model_copy(update={"default_monitors": False})  # LOOPWATCH_DEFAULT_MONITORS=false
        assert MonitorStore(storage, off).list("fresh") == []
        slow = settings.model_copy(update={"default_latency_p95_ms": 800.0})
        p95 = MonitorStore(storage, slow).get("fresh", "default-latency-p95")
        assert p95 is not None
        assert p95.condition.value == 800.0


class TestYaml:
    """LOOPWATCH_MONITORS_FILE: validated whole, secrets from the environment, upserted by id."""

    def test_load_and_upsert(self, monitoring: Monitoring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LW_TEST_SECRET", SECRET)
        path = tmp_path / "monitors.yaml"
        path.write_text(YAML)
        loaded = monitoring.store.load_file(path)
        assert [m.monitor_id for m in loaded] == ["checkout-drift", "checkout-p95"]
        stored = monitoring.store.get("checkout", "checkout-drift")
        assert stored is not None
        assert stored.retrain_after == 3
        assert stored.scope == "fraud-scorer"
        assert stored.channels[0].secret.get_secret_value() == SECRET  # type: ignore[union-attr]
        assert monitoring.store.upsert(loaded) == 0  # unchanged: nothing rewritten
        path.write_text(YAML.replace("value: 1500", "value: 900"))
        monitoring.store.load_file(path)
        p95 = monitoring.store.get("checkout", "checkout-p95")
        assert p95 is not None
        assert p95.condition.value == 900
        assert p95.created_at == loaded[1].created_at < p95.updated_at

    def test_every_problem_is_reported_with_its_location(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("LW_TEST_SECRET", raising=False)
        path = tmp_path / "bad.yaml"
        path.write_text(
            YAML.replace("value: 1500", "value: lots").replace(
                "  - monitor_id: checkout-p95\n    project", "  - project"
            )
        )
        with pytest.raises(MonitorFileError) as caught:
            load_monitors_file(path)
        message = str(caught.value)
        assert "monitors[0].channels[0].secret: environment variable LW_TEST_SECRET is not set" in message
        assert "monitors[1].monitor_id: field required" in message
        assert "monitors[1].condition.threshold.value" in message

    def test_private_targets_refused_unless_allowed(
        self, storage: Storage, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("LW_TEST_SECRET", SECRET)
        path = tmp_path / "monitors.yaml"
        path.write_text(YAML)
        strict = MonitorStore(storage, make_settings(data_dir, allow_private_webhooks=False))
        with pytest.raises(MonitorFileError, match=r"monitors\[0\]\.channels\[0\]\.url: .*loopback"):
            strict.load_file(path)
        assert strict.get("checkout", "checkout-drift") is None  # nothing written from a refused file

    def test_file_loaded_at_start(
        self, storage: Storage, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import asyncio

        monkeypatch.setenv("LW_TEST_SECRET", SECRET)
        path = tmp_path / "monitors.yaml"
        path.write_text(YAML)
        monitoring = Monitoring(storage, settings.model_copy(update={"monitors_file": path}), sweep_seconds=None)

        async def run() -> None:
            await monitoring.start()
            await monitoring.stop()

        asyncio.run(run())
        assert monitoring.store.get("checkout", "checkout-p95") is not None
