"""MonitorEngine.evaluate on real chDB: what fires, what does not, and what asks for retraining."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from schemas.monitors import MonitorCreate
from schemas.stats import StatRow
from streams.monitors import Monitoring
from streams.storage import alerts as alert_rows
from streams.storage import retrain_requests
from streams.storage.alerts import StoredAlert
from tests.monitors.conftest import drift_rows, row, window

DRIFT = {
    "name": "Dataset drift",
    "family": "drift",
    "metric": "dataset_drift",
    "condition": {"type": "flagged"},
    "cooldown_seconds": 0,
}


def _create(monitoring: Monitoring, project: str = "shop", **spec: Any) -> str:
    return monitoring.store.create(project, MonitorCreate.model_validate(spec)).monitor_id


def _stored_alerts(monitoring: Monitoring, project: str = "shop") -> list[StoredAlert]:
    return alert_rows.listed(monitoring.alerts.storage, project)


def _p95(n: int, value: float, **fields: Any) -> StatRow:
    return row(n, "latency", "latency_p95_ms", value, **fields)


class TestDriftAlert:
    """A flagged dataset_drift row fires once, with the window's most drifted features and a report link."""

    def test_alert_details_and_link(self, monitoring: Monitoring) -> None:
        monitor_id = _create(monitoring, **DRIFT, severity="critical")
        result = monitoring.engine.evaluate(drift_rows(0))
        assert len(result.alerts) == 1
        assert not result.retrains
        alert = result.alerts[0]
        start, end = window(0)
        assert (alert.kind, alert.severity, alert.metric, alert.model) == ("drift", "critical", "dataset_drift", "m1")
        assert alert.value == pytest.approx(0.8)
        assert alert.threshold == 0.5
        assert alert.condition == "flagged"
        assert alert.dedup_key == f"{monitor_id}:m1:{start.isoformat()}"
        assert (alert.window_start, alert.window_end) == (start, end)
        features = alert.details["features"]
        assert [f["name"] for f in features[:4]] == ["feature.country", "prompt.chars", "feature.age", "response.words"]
        assert features[0] == {
            "name": "feature.country",
            "method": "chisquare",
            "value": 1e-9,
            "threshold": 0.05,
            "p_value": 1e-9,
            "drifted": True,
            "score": pytest.approx(6.92, abs=0.01),
        }
        assert (alert.details["drifted_columns"], alert.details["columns"]) == (4, 5)
        link = urlsplit(alert.stats_api_url or "")
        assert f"{link.scheme}://{link.netloc}{link.path}" == "https://loopwatch.example.com/v1/reports/drift"
        assert parse_qs(link.query) == {"model": ["m1"], "window_start": [start.isoformat()]}
        # people get the dashboard (sign-in, then the page), machines the API under their own names
        assert alert.alert_url == f"https://loopwatch.example.com/ui/alerts/{alert.alert_id}?project=shop"
        assert alert.window_url == (
            "https://loopwatch.example.com/ui/models/m1/windows/" + quote(start.isoformat(), safe="")
        )
        assert alert.api_url == f"https://loopwatch.example.com/v1/alerts/{alert.alert_id}"
        assert alert.summary == "4 of 5 columns drifted (80 %, Evidently's share rule flags at 50 %)"
        assert [a.alert_id for a in _stored_alerts(monitoring)] == [alert.alert_id]
        assert result.monitors[0].monitor_id == monitor_id

    def test_same_window_again_never_fires_twice(self, monitoring: Monitoring) -> None:
        _create(monitoring, **DRIFT)
        assert len(monitoring.engine.evaluate(drift_rows(0)).alerts) == 1
        assert not monitoring.engine.evaluate(drift_rows(0))
        assert len(_stored_alerts(monitoring)) == 1

    def test_features_read_from_storage_when_only_the_dataset_row_comes(self, monitoring: Monitoring) -> None:
        _create(monitoring, **DRIFT)
        rows = drift_rows(0)
        columns = [r for r in rows if r.metric == "column_drift"]
        from streams.storage import window_stats  # the stats engine's own writer

        window_stats.insert(monitoring.alerts._storage, columns)
        alert = monitoring.engine.evaluate([rows[-1]]).alerts[0]
        assert alert.details["features"][0]["name"] == "feature.country"
        assert alert.details["columns"] == 5

    def test_not_drifted_no_alert(self, monitoring: Monitoring) -> None:
        _create(monitoring, **DRIFT)
        assert not monitoring.engine.evaluate(drift_rows(0, drifted=False))


class TestCooldown:
    """No new alert for the same monitor and model within cooldown_seconds (window time) of the last."""

    def test_within_and_after_cooldown(self, monitoring: Monitoring) -> None:
        _create(monitoring, **{**DRIFT, "cooldown_seconds": 900})
        fired = [len(monitoring.engine.evaluate(drift_rows(n)).alerts) for n in range(5)]
        # windows are 5 min apart: 0 fires, 1 and 2 (5, 10 min) are inside 15 min, 3 (15 min) fires again
        assert fired == [1, 0, 0, 1, 0]

    def test_cooldown_is_per_model(self, monitoring: Monitoring) -> None:
        _create(monitoring, **{**DRIFT, "cooldown_seconds": 3600})
        assert len(monitoring.engine.evaluate(drift_rows(0) + drift_rows(0, model="m2")).alerts) == 2
        assert not monitoring.engine.evaluate(drift_rows(1) + drift_rows(1, model="m2"))


class TestConditions:
    """Thresholds, p-values, min_samples, scope and dimension, as stored monitors see real rows."""

    def test_threshold_and_min_samples(self, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            name="p95",
            family="latency",
            metric="latency_p95_ms",
            cooldown_seconds=0,
            condition={"type": "threshold", "operator": "gt", "value": 2000},
            min_samples=50,
        )
        assert not monitoring.engine.evaluate([_p95(0, 1999.0)])
        assert not monitoring.engine.evaluate([_p95(1, 9000.0, sample_size=49)])  # too few calls to judge
        alert = monitoring.engine.evaluate([_p95(2, 2500.0, sample_size=50)]).alerts[0]
        assert (alert.kind, alert.value, alert.threshold, alert.condition) == ("latency", 2500.0, 2000.0, ">")
        assert "/v1/stats/latency?" in (alert.stats_api_url or "")
        assert alert.summary == "latency_p95_ms 2,500 ms > 2,000 ms"

    def test_error_rate_alerts_are_their_own_kind(self, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            name="errors",
            family="latency",
            metric="error_rate",
            cooldown_seconds=0,
            condition={"type": "threshold", "operator": "gte", "value": 0.05},
        )
        assert monitoring.engine.evaluate([row(0, "latency", "error_rate", 0.2)]).alerts[0].kind == "error_rate"

    def test_p_value_drop_only(self, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            name="thumbs",
            family="quality",
            metric="thumbs_up_rate",
            cooldown_seconds=0,
            condition={"type": "p_value", "alpha": 0.01},
        )

        def thumbs(n: int, value: float, p: float | None) -> StatRow:
            details = {"reference": 0.8, "effect": value - 0.8, "test": "fisher"}
            return row(n, "quality", "thumbs_up_rate", value, p_value=p, threshold=0.05, details=details)

        assert not monitoring.engine.evaluate([thumbs(0, 0.6, 0.03)])  # not significant at alpha 0.01
        assert not monitoring.engine.evaluate([thumbs(1, 0.95, 0.001)])  # significant, but better
        assert not monitoring.engine.evaluate([thumbs(2, 0.6, None)])  # not testable
        alert = monitoring.engine.evaluate([thumbs(3, 0.5, 0.001)]).alerts[0]
        assert (alert.kind, alert.p_value, alert.threshold, alert.condition) == (
            "quality",
            0.001,
            0.01,
            "p < 0.01, decrease",
        )
        assert alert.details["statistic"] == {"reference": 0.8, "effect": pytest.approx(-0.3), "test": "fisher"}

    def test_any_column_picks_the_most_drifted(self, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            name="columns",
            family="drift",
            metric="column_drift",
            condition={"type": "p_value"},
            cooldown_seconds=0,
        )
        alert = monitoring.engine.evaluate(drift_rows(0)).alerts[0]
        assert alert.dimension == "feature.country"
        assert alert.p_value == 1e-9
        assert [b["dimension"] for b in alert.details["breaching"]] == ["feature.country", "feature.age"]

    def test_scope_project_and_version(self, monitoring: Monitoring) -> None:
        _create(
            monitoring,
            name="p95",
            family="latency",
            metric="latency_p95_ms",
            scope="m1",
            cooldown_seconds=0,
            condition={"type": "threshold", "operator": "gt", "value": 1},
        )
        assert not monitoring.engine.evaluate([_p95(0, 5.0, model="m2")])  # other model
        assert not monitoring.engine.evaluate([_p95(0, 5.0, model_version="v2")])  # per-version copy
        other = monitoring.engine.evaluate([_p95(0, 5.0, project="elsewhere")])  # other project: its defaults
        assert not other.alerts
        assert len(monitoring.engine.evaluate([_p95(0, 5.0)]).alerts) == 1

    def test_defaults_fire_for_unconfigured_projects(self, monitoring: Monitoring) -> None:
        result = monitoring.engine.evaluate([_p95(0, 6000.0), *drift_rows(0)])
        assert sorted(a.monitor_id for a in result.alerts) == ["default-family-drift", "default-latency-p95"]
        assert all(a.severity == "warning" for a in result.alerts)

    def test_default_drift_monitor_watches_family_verdicts_not_the_share(self, monitoring: Monitoring) -> None:
        rows = drift_rows(0)
        diluted = [dataclasses.replace(r, flagged=False) if r.metric == "dataset_drift" else r for r in rows]
        assert [a.monitor_id for a in monitoring.engine.evaluate(diluted).alerts] == ["default-family-drift"]
        assert not monitoring.engine.evaluate(drift_rows(1, drifted=False)).alerts


class TestRetraining:
    """retrain_after N consecutive breaching windows → one RetrainEvent; a calm window resets the count."""

    def test_streak_reset_and_request(self, monitoring: Monitoring) -> None:
        monitor_id = _create(monitoring, **{**DRIFT, "cooldown_seconds": 600, "retrain_after": 3})
        breach = [True, True, False, True, True, True, True]
        retrains = []
        for n, drifted in enumerate(breach):
            result = monitoring.engine.evaluate(drift_rows(n, drifted=drifted))
            retrains.append(len(result.retrains))
            if result.retrains:
                event = result.retrains[0]
        # windows 0-1 breach, 2 resets, 3-4-5 complete a streak; 6 starts a new one
        assert retrains == [0, 0, 0, 0, 0, 1, 0]
        assert event.model == "m1"
        assert (event.window_start, event.window_end) == (window(3)[0], window(5)[1])
        evidence = event.evidence
        assert evidence["monitor_id"] == monitor_id
        assert evidence["consecutive_breaches"] == 3
        assert [w["window_start"] for w in evidence["windows"]] == [window(n)[0].isoformat() for n in (3, 4, 5)]
        stored = {a.alert_id: a.window_start for a in _stored_alerts(monitoring)}
        # window 3 fired; 4 was inside its cooldown (its alert stands for it); 5 fired again
        assert event.reason == [
            a for a, start in sorted(stored.items(), key=lambda kv: kv[1]) if start in (window(3)[0], window(5)[0])
        ]
        assert event.dataset["endpoint"] == "/v1/feedback/export"
        assert event.dataset["params"] == {
            "model": "m1",
            "kind": "correction",
            "format": "chat",
            "until": window(5)[1].isoformat(),
        }
        requests = retrain_requests.listed(monitoring.alerts.storage, "shop")
        assert [r.request_id for r in requests] == [event.request_id]
        assert requests[0].monitor_id == monitor_id

    def test_recomputed_window_does_not_request_twice(self, monitoring: Monitoring) -> None:
        _create(monitoring, **{**DRIFT, "retrain_after": 2})
        assert not monitoring.engine.evaluate(drift_rows(0)).retrains
        first = monitoring.engine.evaluate(drift_rows(1)).retrains
        assert len(first) == 1
        assert not monitoring.engine.evaluate(drift_rows(1))  # late data recomputed the window: nothing new
        assert not monitoring.engine.evaluate(drift_rows(2, drifted=False)).retrains  # recovered
        second = monitoring.engine.evaluate(drift_rows(3)).retrains + monitoring.engine.evaluate(drift_rows(4)).retrains
        assert len(second) == 1
        assert second[0].dataset["params"]["since"] == window(1)[1].isoformat()  # data since the last request

    def _requests(self, monitoring: Monitoring, windows: range, *, drifted: bool = True) -> list[int]:
        return [len(monitoring.engine.evaluate(drift_rows(n, drifted=drifted)).retrains) for n in windows]

    def test_one_request_per_episode(self, monitoring: Monitoring) -> None:
        _create(monitoring, **{**DRIFT, "retrain_after": 3})
        assert self._requests(monitoring, range(6)) == [0, 0, 1, 0, 0, 0]  # drift persists: asked once
        assert self._requests(monitoring, range(6, 7), drifted=False) == [0]  # recovered: the episode ends
        assert self._requests(monitoring, range(7, 10)) == [0, 0, 1]  # a new episode asks again
        requests = retrain_requests.listed(monitoring.alerts.storage, "shop")
        assert sorted(r.window_start for r in requests) == [window(0)[0], window(7)[0]]

    def test_windows_too_small_to_evaluate_do_not_end_the_episode(self, monitoring: Monitoring) -> None:
        _create(monitoring, **{**DRIFT, "retrain_after": 2, "min_samples": 100})
        assert self._requests(monitoring, range(2)) == [0, 1]
        calm_but_tiny = [dataclasses.replace(r, sample_size=5) for r in drift_rows(2, drifted=False)]
        assert not monitoring.engine.evaluate(calm_but_tiny)  # not evaluated: says nothing about recovery
        assert self._requests(monitoring, range(3, 5)) == [0, 0]
        assert len(retrain_requests.listed(monitoring.alerts.storage, "shop")) == 1

    def test_episode_survives_a_restart(self, monitoring: Monitoring, storage: Any, settings: Any) -> None:
        _create(monitoring, **{**DRIFT, "retrain_after": 3})
        assert self._requests(monitoring, range(3)) == [0, 0, 1]
        restarted = Monitoring(storage, settings, sweep_seconds=None)  # no memory, only what is stored
        assert self._requests(restarted, range(3, 6)) == [0, 0, 0]
        assert self._requests(restarted, range(6, 7), drifted=False) == [0]
        assert self._requests(restarted, range(7, 10)) == [0, 0, 1]

    def test_streak_survives_a_restart(self, monitoring: Monitoring, storage: Any, settings: Any) -> None:
        _create(monitoring, **{**DRIFT, "retrain_after": 2})
        monitoring.engine.evaluate(drift_rows(0))
        restarted = Monitoring(storage, settings, sweep_seconds=None)
        assert len(restarted.engine.evaluate(drift_rows(1)).retrains) == 1


class TestRetryOnFailure:
    """A failed evaluation keeps its rows; the next call evaluates them too, so no window is lost."""

    def test_rows_kept_and_retried(self, monitoring: Monitoring, monkeypatch: pytest.MonkeyPatch) -> None:
        _create(monitoring, **DRIFT)
        real = monitoring.engine.evaluate
        calls = []

        def flaky(rows: Any) -> Any:
            calls.append(len(rows))
            if len(calls) == 1:
                raise RuntimeError("storage down")
            return real(rows)

        monkeypatch.setattr(monitoring.engine, "evaluate", flaky)
        assert not monitoring.evaluate(drift_rows(0))
        result = monitoring.evaluate(drift_rows(1))
        assert calls == [len(drift_rows(0)), 2 * len(drift_rows(0))]
        assert len(result.alerts) == 2
