"""Per-entity (group_by) monitors and rolling windows, evaluated on real chDB rows."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from schemas.monitors import MonitorCreate
from streams.monitors import Monitoring
from streams.storage import Storage
from streams.storage import alerts as alert_rows
from tests.monitors.conftest import T0, row, window

_COLUMNS = ["project", "event_id", "model", "timestamp", "status", "latency_ms", "cost_usd", "tags"]


def _insert(storage: Storage, rows: list[list[Any]]) -> None:
    for start in range(0, len(rows), 50_000):
        storage.insert_rows("inferences", _COLUMNS, rows[start : start + 50_000])


def _spend(n: int, users: dict[str, float]) -> list[list[Any]]:
    """Window ``n``'s events: one per (user, dollar amount) pair given."""
    start, _ = window(n)
    return [
        ["shop", f"e-{n}-{i}", "m1", start + timedelta(milliseconds=i % 290_000), "ok", 120.0, cost, {"user_id": user}]
        for i, (user, cost) in enumerate(users.items())
    ]


def _create(monitoring: Monitoring, **fields: Any) -> None:
    spec = {"name": "per user", "family": "cost", "metric": "cost_usd", **fields}
    monitoring.store.create("shop", MonitorCreate.model_validate(spec))


class TestGroupBy:
    """``group_by`` judges each tag value; the alert names the breaching ones with their values."""

    @pytest.mark.parametrize("pass_size", [100_000, 1000], ids=["one-pass", "ten-passes"])
    def test_ten_thousand_users_three_overspend(self, storage: Storage, monitoring: Monitoring, pass_size: int) -> None:
        monitoring.engine.settings = monitoring.settings.model_copy(update={"entity_pass_size": pass_size})
        _create(
            monitoring,
            monitor_id="big-spenders",
            group_by="user_id",
            condition={"type": "threshold", "operator": "gt", "value": 20},
        )
        users = {f"u-{i:05d}": 0.5 + (i % 7) for i in range(10_000)}  # at most $6.50 each
        users |= {"u-00017": 31.0, "u-04242": 25.5, "u-09999": 20.25}
        _insert(storage, _spend(0, users))
        result = monitoring.evaluate([row(0, "cost", "cost_usd", sum(users.values()))])
        assert len(result.alerts) == 1
        alert = result.alerts[0]
        assert alert.entities == ["user_id=u-00017", "user_id=u-04242", "user_id=u-09999"]
        assert [(e["entity"], e["value"]) for e in alert.details["entities"]] == [
            ("user_id=u-00017", 31.0),
            ("user_id=u-04242", 25.5),
            ("user_id=u-09999", 20.25),
        ]
        assert alert.details["breaching_entities"] == 3
        assert alert.summary.startswith("3 user_id values with cost_usd > $20.0000: u-00017 $31.0000")
        stored = alert_rows.detail(monitoring.alerts.storage, "shop", alert.alert_id)
        assert stored is not None
        assert stored.entities == alert.entities

    def test_cooldown_is_per_entity(self, storage: Storage, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            monitor_id="spenders",
            group_by="user_id",
            cooldown_seconds=3600,
            condition={"type": "threshold", "operator": "gt", "value": 20},
        )
        _insert(storage, _spend(0, {"a": 30.0, "b": 1.0}))
        first = monitoring.evaluate([row(0, "cost", "cost_usd", 31.0)])
        _insert(storage, _spend(1, {"a": 40.0, "b": 50.0}))  # a is cooling down, b is news
        second = monitoring.evaluate([row(1, "cost", "cost_usd", 90.0)])
        assert [a.entities for a in first.alerts] == [["user_id=a"]]
        assert [a.entities for a in second.alerts] == [["user_id=b"]]

    def test_top_k_bounds_the_names_not_the_count(self, storage: Storage, monitoring: Monitoring) -> None:
        monitoring.engine.settings = monitoring.settings.model_copy(update={"entity_top_k": 2})
        _create(
            monitoring,
            monitor_id="k",
            group_by="user_id",
            condition={"type": "threshold", "operator": "gt", "value": 5},
        )
        _insert(storage, _spend(0, {f"u{i}": 10.0 + i for i in range(6)}))
        alert = monitoring.evaluate([row(0, "cost", "cost_usd", 75.0)]).alerts[0]
        assert alert.entities == ["user_id=u5", "user_id=u4"]
        assert alert.details["breaching_entities"] == 6
        assert "and 1 more" in alert.summary

    def test_per_user_over_a_rolling_hour(self, storage: Storage, monitoring: Monitoring) -> None:
        """$12 in each of two windows is not over $20 in either, but it is over the last hour."""
        _create(
            monitoring,
            monitor_id="hourly",
            group_by="user_id",
            window="1h",
            condition={"type": "threshold", "operator": "gt", "value": 20},
        )
        _insert(storage, _spend(0, {"steady": 12.0, "light": 1.0}))
        _insert(storage, _spend(1, {"steady": 12.0, "light": 1.0}))
        assert monitoring.evaluate([row(0, "cost", "cost_usd", 13.0)]).alerts == []
        alert = monitoring.evaluate([row(1, "cost", "cost_usd", 13.0)]).alerts[0]
        assert alert.entities == ["user_id=steady"]
        assert alert.details["entities"][0]["value"] == pytest.approx(24.0)
        assert alert.summary.endswith("over the last 1h")

    def test_users_whose_thumbs_turned_down(self, storage: Storage, monitoring: Monitoring) -> None:
        """Quality per entity: the thumbs-up rate of each user's calls (their newest thumb each)."""
        _create(
            monitoring,
            monitor_id="unhappy-users",
            family="quality",
            metric="thumbs_up_rate",
            group_by="user_id",
            min_samples=3,
            condition={"type": "threshold", "operator": "lt", "value": 0.5},
        )
        start, _ = window(0)
        users = [f"u-{i:04d}" for i in range(1000)]
        calls = [
            ["shop", f"e-{user}-{k}", "m1", start + timedelta(seconds=k), "ok", 120.0, 0.01, {"user_id": user}]
            for user in users
            for k in range(4)
        ]
        _insert(storage, calls)
        unhappy = {"u-0007": 0.0, "u-0500": 0.25}  # 0 of 4 and 1 of 4 thumbs up
        thumbs = []
        for user in users:
            ups = round(4 * unhappy.get(user, 1.0))
            for k in range(4):
                thumbs.append(["shop", f"f-{user}-{k}", f"e-{user}-{k}", start, "thumbs", 1.0 if k < ups else -1.0])
        # a user with two thumbs-down only: fewer than min_samples, never judged
        thumbs += [["shop", f"f-few-{k}", f"e-u-0999-{k}", start, "thumbs", -1.0] for k in range(2)]
        thumbs = [t for t in thumbs if not t[2].startswith("e-u-0999-") or t[1].startswith("f-few")]
        # the newest thumb of a call wins: u-0001 first thumbed all down, then changed every one to up
        thumbs += [["shop", f"f-old-{k}", f"e-u-0001-{k}", start, "thumbs", -1.0] for k in range(4)]
        columns = ["project", "feedback_id", "inference_id", "timestamp", "kind", "value", "ingested_at"]
        storage.insert_rows(
            "feedback",
            columns,
            [[*t, start - timedelta(hours=1) if t[1].startswith("f-old") else start] for t in thumbs],
        )
        result = monitoring.evaluate([row(0, "quality", "thumbs_up_rate", 0.99)])
        assert len(result.alerts) == 1
        alert = result.alerts[0]
        assert alert.entities == ["user_id=u-0007", "user_id=u-0500"]
        assert [(e["entity"], e["value"]) for e in alert.details["entities"]] == [
            ("user_id=u-0007", 0.0),
            ("user_id=u-0500", 0.25),
        ]

    def test_refuses_what_it_cannot_group(self) -> None:
        with pytest.raises(ValueError, match="group_by works for"):
            MonitorCreate.model_validate(
                {
                    "name": "x",
                    "family": "drift",
                    "metric": "dataset_drift",
                    "group_by": "user_id",
                    "condition": {"type": "threshold", "operator": "gt", "value": 0.5},
                }
            )


class TestRolling:
    """``window`` judges the statistic over the last hour or day up to the closed window's end."""

    def test_p95_over_an_hour_is_numpys_percentile_of_the_hours_rows(
        self, storage: Storage, monitoring: Monitoring
    ) -> None:
        _create(
            monitoring,
            monitor_id="p95-1h",
            family="latency",
            metric="latency_p95_ms",
            window="1h",
            condition={"type": "threshold", "operator": "gt", "value": 1},
        )
        rng = random.Random(7)
        latencies = [rng.lognormvariate(5, 0.8) for _ in range(5000)]
        hour_start = T0 - timedelta(minutes=55)  # the hour that ends with window 0
        rows = [
            ["shop", f"e{i}", "m1", hour_start + timedelta(milliseconds=720 * i), "ok", value, None, {}]
            for i, value in enumerate(latencies)
        ]
        rows.append(["shop", "old", "m1", hour_start - timedelta(seconds=1), "ok", 1e9, None, {}])  # outside
        _insert(storage, rows)
        alert = monitoring.evaluate([row(0, "latency", "latency_p95_ms", 1.0)]).alerts[0]
        assert alert.value == pytest.approx(float(np.percentile(latencies, 95)), rel=1e-12)
        assert alert.summary.endswith("over the last 1h")
        assert alert.details["window"] == "1h"

    def test_error_rate_over_a_day_composes_stored_windows(self, storage: Storage, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            monitor_id="errors-24h",
            family="latency",
            metric="error_rate",
            window="24h",
            condition={"type": "threshold", "operator": "gt", "value": 0.01},
        )
        stats = []
        for n in range(-30, 1):  # 31 windows: 100 calls each, 10 errors in the last five
            start, end = window(n)
            for metric, value in (("count", 100.0), ("error_count", 10.0 if n > -5 else 0.0)):
                stats.append(["shop", "m1", "", start, end, "latency", metric, "", value, 100])
        storage.insert_rows(
            "window_stats",
            [
                "project",
                "model",
                "model_version",
                "window_start",
                "window_end",
                "family",
                "metric",
                "dimension",
                "value",
                "sample_size",
            ],
            stats,
        )
        alert = monitoring.evaluate([row(0, "latency", "error_rate", 0.1)]).alerts[0]
        assert alert.value == pytest.approx(50 / 3100)
        assert alert.details["statistic"]["windows"] == 31

    def test_rolling_needs_a_threshold_on_a_composable_or_raw_metric(self) -> None:
        with pytest.raises(ValueError, match="window works with"):
            MonitorCreate.model_validate(
                {
                    "name": "x",
                    "family": "drift",
                    "metric": "dataset_drift",
                    "window": "1h",
                    "condition": {"type": "flagged"},
                }
            )
