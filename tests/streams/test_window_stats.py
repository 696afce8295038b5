"""Statistics per window, end to end in embedded mode: events in over HTTP, rows in window_stats."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price

from loopwatch.process import serving_app
from schemas.stats import FAMILIES, METRICS
from tests.conftest import Api, make_settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = 60


@pytest.fixture
def stats_api(data_dir):
    settings = make_settings(
        data_dir,
        window_seconds=WINDOW,
        allowed_lateness_seconds=0,
        quality_refresh_seconds=0.01,
        reference_min_rows=50,
        drift_share=0.1,
    )
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _events(window: int, n: int, *, shifted: bool, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.randint(40, 80) if shifted else rng.randint(5, 15)
        out.append(
            {
                "event_id": f"w{window}-{i}",
                "model": "gpt-4o-mini",
                "provider": "openai",
                "timestamp": (T0 + timedelta(seconds=window * WINDOW + i * WINDOW / n)).isoformat(),
                "latency_ms": rng.lognormvariate(5, 0.3),
                "status": "error" if i % 20 == 0 else "ok",
                "input_tokens": 100 + i % 7,
                "output_tokens": 50,
                "prompt": " ".join(["hello"] * words),
                "response": "fine thanks",
                "features": {"age": rng.gauss(60 if shifted else 40, 5), "plan": rng.choice(["a", "b"])},
                "tags": {"route": "/chat" if i % 2 else "/help"},
            }
        )
    return out


def _post(api: Api, headers: dict, path: str, items: list) -> None:
    response = api.client.post(path, content=orjson.dumps(items), headers=headers)
    assert response.status_code == 202, response.text


def _stats(api: Api, headers: dict, family: str, **params) -> list[dict]:
    response = api.client.get(f"/v1/stats/{family}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestWindows:
    """A stream with a known shift is flagged in that window only; every family is computed."""

    def test_shift_flagged_only_where_injected(self, stats_api: Api) -> None:
        headers = stats_api.key("win")
        windows = 6
        for window in range(windows):
            _post(stats_api, headers, "/v1/inferences", _events(window, 300, shifted=window == 4, seed=window))
        # an event far later closes every earlier window (watermark passes their ends)
        _post(stats_api, headers, "/v1/inferences", _events(windows + 1, 1, shifted=False, seed=99))
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)
        drift = _stats(stats_api, headers, "drift", metric="dataset_drift", model="gpt-4o-mini")
        flagged = {row["window_start"]: row["flagged"] for row in drift}
        # window 0 is the default reference; windows 1..5 are compared with it
        assert len(flagged) == windows - 1
        assert [
            flagged[(T0 + timedelta(seconds=w * WINDOW)).isoformat().replace("+00:00", "Z")] for w in range(1, windows)
        ] == [False, False, False, True, False]
        shifted = _stats(
            stats_api,
            headers,
            "drift",
            metric="column_drift",
            since=(T0 + timedelta(seconds=4 * WINDOW)).isoformat(),
            until=(T0 + timedelta(seconds=5 * WINDOW)).isoformat(),
        )
        by_column = {row["dimension"]: row for row in shifted}
        assert by_column["feature.age"]["flagged"] and by_column["prompt.word_count"]["flagged"]
        assert not by_column["feature.plan"]["flagged"]
        age = _stats(stats_api, headers, "drift", metric="column_drift", dimension="feature.age")
        assert [row["flagged"] for row in age] == [False, False, False, True, False]
        assert all(row["details"]["method"] == "ks" for row in age)  # < 1000 reference rows: Evidently's KS

    def test_latency_and_cost_rows_match_numpy_and_genai_prices(self, stats_api: Api) -> None:
        headers = stats_api.key("lat")
        events = _events(0, 200, shifted=False, seed=5)
        _post(stats_api, headers, "/v1/inferences", events)
        _post(stats_api, headers, "/v1/inferences", _events(3, 1, shifted=False, seed=6))
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)
        window = (T0).isoformat()
        latency = {
            r["metric"]: r
            for r in _stats(
                stats_api, headers, "latency", since=window, until=(T0 + timedelta(seconds=WINDOW)).isoformat()
            )
        }
        values = np.array([e["latency_ms"] for e in events])
        assert latency["count"]["value"] == 200
        assert latency["error_rate"]["value"] == pytest.approx(10 / 200)
        for q in (50, 95, 99):
            assert latency[f"latency_p{q}_ms"]["value"] == pytest.approx(np.percentile(values, q), rel=1e-9)
        cost = _stats(stats_api, headers, "cost", since=window, until=(T0 + timedelta(seconds=WINDOW)).isoformat())
        total = next(r for r in cost if r["metric"] == "cost_usd" and r["dimension"] == "")
        expected = sum(
            float(
                calc_price(
                    Usage(input_tokens=e["input_tokens"], output_tokens=e["output_tokens"]),
                    model_ref="gpt-4o-mini",
                    provider_id="openai",
                    genai_request_timestamp=T0,
                ).total_price
            )
            for e in events
        )
        assert total["value"] == pytest.approx(expected, rel=1e-9)
        by_route = {r["dimension"]: r["value"] for r in cost if r["dimension"].startswith("tag:route=")}
        assert sum(by_route.values()) == pytest.approx(expected, rel=1e-9)
        unknown = next(r for r in cost if r["metric"] == "unknown_cost_events")
        assert unknown["value"] == 0


class TestUnknownModelCost:
    """A model genai-prices does not know is counted as unknown, never priced at zero."""

    def test_unknown_model(self, stats_api: Api) -> None:
        headers = stats_api.key("unk")
        events = [
            {
                "event_id": f"u{i}",
                "model": "my-private-llm",
                "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
                "input_tokens": 10,
                "output_tokens": 5,
            }
            for i in range(20)
        ]
        _post(stats_api, headers, "/v1/inferences", events)
        _post(
            stats_api,
            headers,
            "/v1/inferences",
            [{**events[0], "event_id": "late", "timestamp": (T0 + timedelta(minutes=10)).isoformat()}],
        )
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)
        cost = {
            r["metric"]: r["value"]
            for r in _stats(stats_api, headers, "cost", until=(T0 + timedelta(seconds=WINDOW)).isoformat())
            if r["dimension"] == ""
        }
        assert cost["unknown_cost_events"] == 20
        detail = stats_api.client.get("/v1/inferences/u1", headers=headers).json()
        assert detail["cost_usd"] is None


class TestLateFeedback:
    """Late feedback changes the quality of its inference's window, and only that one."""

    def test_late_feedback_updates_the_right_window(self, stats_api: Api) -> None:
        headers = stats_api.key("fb")
        for window in range(3):
            _post(stats_api, headers, "/v1/inferences", _events(window, 100, shifted=False, seed=window))
        thumbs = [
            {"inference_id": f"w{w}-{i}", "kind": "thumbs", "value": 1, "feedback_id": f"t{w}-{i}"}
            for w in range(3)
            for i in range(40)
        ]
        _post(stats_api, headers, "/v1/feedback", thumbs)
        _post(stats_api, headers, "/v1/inferences", _events(6, 1, shifted=False, seed=9))
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)

        def rates() -> dict[str, float]:
            rows = _stats(stats_api, headers, "quality", metric="thumbs_up_rate")
            return {row["window_start"]: row["value"] for row in rows}

        before = rates()
        assert set(before.values()) == {1.0}
        late = [
            {
                "inference_id": f"w1-{i}",
                "kind": "thumbs",
                "value": -1,
                "feedback_id": f"late-{i}",
                "timestamp": (T0 + timedelta(hours=5)).isoformat(),
            }
            for i in range(40, 80)
        ]
        _post(stats_api, headers, "/v1/feedback", late)
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)
        after = rates()
        window1 = (T0 + timedelta(seconds=WINDOW)).isoformat().replace("+00:00", "Z")
        assert after[window1] == pytest.approx(40 / 80)
        assert {k: v for k, v in after.items() if k != window1} == {k: v for k, v in before.items() if k != window1}
        row = next(
            r for r in _stats(stats_api, headers, "quality", metric="thumbs_up_rate") if r["window_start"] == window1
        )
        assert row["flagged"] and row["p_value"] < 0.05


class TestReferencesAndReports:
    """A pinned reference replaces the default; the drift report opens as Evidently HTML."""

    def test_reference_upload_range_and_report(self, stats_api: Api) -> None:
        headers = stats_api.key("ref")
        for window in range(3):
            _post(stats_api, headers, "/v1/inferences", _events(window, 200, shifted=window == 2, seed=window))
        _post(stats_api, headers, "/v1/inferences", _events(5, 1, shifted=False, seed=7))
        stats_api.wait_written()
        first = stats_api.client.get("/v1/models/gpt-4o-mini/reference", headers=headers).json()
        assert first["kind"] == "first_window" and first["rows"] == 200
        pinned = stats_api.client.post(
            "/v1/models/gpt-4o-mini/reference",
            headers=headers,
            json={
                "start": (T0 + timedelta(seconds=2 * WINDOW)).isoformat(),
                "end": (T0 + timedelta(seconds=3 * WINDOW)).isoformat(),
            },
        )
        assert pinned.status_code == 201, pinned.text
        assert pinned.json()["kind"] == "range" and "feature.age" in pinned.json()["columns"]
        rows = "\n".join(orjson.dumps({"age": 40.0 + i % 7, "plan": "a"}).decode() for i in range(300))
        uploaded = stats_api.client.post(
            "/v1/models/other/reference", params={"format": "jsonl"}, headers=headers, content=rows.encode()
        )
        assert uploaded.status_code == 201 and uploaded.json()["rows"] == 300
        bad = stats_api.client.post(
            "/v1/models/other/reference", params={"format": "csv"}, headers=headers, content=b"\x00\x01"
        )
        assert bad.status_code in (400, 422)
        report = stats_api.client.get(
            "/v1/reports/drift",
            headers=headers,
            params={"model": "gpt-4o-mini", "window_start": (T0 + timedelta(seconds=WINDOW)).isoformat()},
        )
        assert report.status_code == 200, report.text[:500]
        assert report.headers["content-type"].startswith("text/html")
        assert "<html" in report.text.lower() and "feature.age" in report.text
        missing = stats_api.client.get(
            "/v1/reports/drift", headers=headers, params={"model": "nope", "window_start": T0.isoformat()}
        )
        assert missing.status_code == 404


class TestPerVersion:
    """Latency and cost are also kept per model version; the default view is all versions."""

    def test_versions(self, stats_api: Api) -> None:
        headers = stats_api.key("ver")
        events = _events(0, 100, shifted=False, seed=3)
        for i, event in enumerate(events):
            event["model_version"] = "v2" if i % 4 == 0 else "v1"
        _post(stats_api, headers, "/v1/inferences", events)
        _post(stats_api, headers, "/v1/inferences", _events(4, 1, shifted=False, seed=4))
        stats_api.wait_written()
        until = (T0 + timedelta(seconds=WINDOW)).isoformat()
        counts = {
            v: _stats(stats_api, headers, "latency", metric="count", model_version=v, until=until)[0]["value"]
            for v in ("", "v1", "v2")
        }
        assert counts == {"": 100, "v1": 75, "v2": 25}
        p95 = _stats(stats_api, headers, "latency", metric="latency_p95_ms", model_version="v2", until=until)[0]
        expected = np.percentile([e["latency_ms"] for e in events if e["model_version"] == "v2"], 95)
        assert p95["value"] == pytest.approx(expected, rel=1e-9)
        cost = {
            v: _stats(stats_api, headers, "cost", metric="input_tokens", model_version=v, until=until)[0]["value"]
            for v in ("v1", "v2")
        }
        assert cost["v2"] == sum(e["input_tokens"] for e in events if e["model_version"] == "v2")


class TestMetricCatalogue:
    """Every number the engine writes is in the catalogue (``schemas.stats.METRICS``) that monitors
    validate against and the stats API re-buckets by: a new metric must be added there first."""

    def test_written_metrics_are_catalogued(self, stats_api: Api) -> None:
        headers = stats_api.key("cat")
        for window in range(5):
            _post(stats_api, headers, "/v1/inferences", _events(window, 120, shifted=window == 3, seed=window))
        feedback = []
        for window in range(5):
            for i in range(60):
                target = f"w{window}-{i}"
                feedback += [
                    {"inference_id": target, "kind": "thumbs", "value": i % 3 != 0},
                    {"inference_id": target, "kind": "rating", "value": 1 + i % 5},
                    {"inference_id": target, "kind": "score", "name": "faithfulness", "value": (i % 10) / 10},
                    {"inference_id": target, "kind": "label", "value": "yes" if i % 2 else "no"},
                ]
        _post(stats_api, headers, "/v1/feedback", feedback)
        _post(stats_api, headers, "/v1/inferences", _events(8, 1, shifted=False, seed=9))
        stats_api.wait_written()
        stats_api.client.portal.call(stats_api.wait_written_stats)
        storage = stats_api.services.storage
        written = set(storage.query(f"SELECT DISTINCT family, metric FROM {storage.database}.window_stats").result_rows)
        assert {family for family, _ in written} == set(FAMILIES)
        assert {"thumbs_up_rate", "mean_rating", "score_mean", "family_drift"} <= {m for _, m in written}
        uncatalogued = {(family, metric) for family, metric in written if metric not in METRICS[family]}
        assert not uncatalogued, f"written but not in schemas.stats.METRICS: {sorted(uncatalogued)}"
        daily = _stats(stats_api, headers, "latency", metric="count", interval=86_400, model="gpt-4o-mini")
        assert [row["value"] for row in daily] == [5 * 120]  # additive per the catalogue: summed, not averaged
        # (the window of the last event is still open)
