"""Per-family drift in window_stats, end to end in embedded mode, with default settings: a mixed feature
and prompt shift is alerted by the default monitors in its first window; stationary windows stay silent;
stored embeddings get their own family verdict."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from detectors.family_drift import FAMILY_ALPHA
from loopwatch.process import serving_app
from tests.conftest import Api, make_settings

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
WINDOW = 60
MODEL = "gpt-4o-mini"
WORDS = ["refund", "invoice", "password", "shipping", "upgrade", "limits", "billing", "account"]


@pytest.fixture
def family_api(data_dir):
    # Default drift settings (drift_share 0.5, no correction): the default rule must catch the shift itself.
    settings = make_settings(data_dir, window_seconds=WINDOW, allowed_lateness_seconds=0, reference_min_rows=50)
    with TestClient(serving_app(settings)) as client:
        yield Api(client)
        storage = client.app.state.runtime.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _events(
    window: int, n: int, *, shifted: bool, embedding_shift: float = 0.0, seed: int, model: str = MODEL
) -> list[dict]:
    """LLM traffic: four numeric features and a plan; the shift moves three features by half a standard
    deviation, changes the plan mix and makes prompts longer (the issue's "any engineer wants to hear")."""
    rng = random.Random(seed)
    shift = 0.5 if shifted else 0.0
    out = []
    for i in range(n):
        words = rng.randint(8, 30) if shifted else rng.randint(5, 20)
        plans = (["free", "pro", "team"], [0.4, 0.4, 0.2] if shifted else [0.6, 0.3, 0.1])
        event = {
            "event_id": f"{'' if model == MODEL else model + '-'}w{window}-{i}",
            "model": model,
            "provider": "openai",
            "timestamp": (T0 + timedelta(seconds=window * WINDOW + i * WINDOW / n)).isoformat(),
            "latency_ms": rng.lognormvariate(5, 0.3),
            "input_tokens": 100,
            "output_tokens": 50,
            "prompt": " ".join(rng.choice(WORDS) for _ in range(words)),
            "response": " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30))),
            "features": {
                "a": rng.gauss(shift, 1),
                "b": rng.gauss(shift, 1),
                "c": rng.gauss(shift, 1),
                "d": rng.gauss(0, 1),
                "plan": rng.choices(*plans)[0],
            },
        }
        event["embedding"] = [rng.gauss(embedding_shift if k < 4 else 0.0, 1) for k in range(8)]
        out.append(event)
    return out


def _post(api: Api, headers: dict, items: list) -> None:
    response = api.client.post("/v1/inferences", content=orjson.dumps(items), headers=headers)
    assert response.status_code == 202, response.text


def _run(api: Api, headers: dict, windows: list[list[dict]], *, close_at: int | None = None) -> None:
    for events in windows:
        _post(api, headers, events)
    closing = len(windows) + 2 if close_at is None else close_at
    _post(api, headers, _events(closing, 1, shifted=False, seed=999))  # closes every earlier window
    api.wait_written()
    api.client.portal.call(api.wait_written_stats)


def _start(window: int) -> str:
    return (T0 + timedelta(seconds=window * WINDOW)).isoformat().replace("+00:00", "Z")


def _families(api: Api, headers: dict) -> dict[tuple[str, str], dict]:
    response = api.client.get("/v1/stats/drift", params={"metric": "family_drift", "model": MODEL}, headers=headers)
    assert response.status_code == 200, response.text
    return {(row["window_start"], row["dimension"]): row for row in response.json()}


class TestMixedShift:
    """Features and prompts move together in window 5: the default monitor alerts in that window."""

    def test_default_monitor_fires_in_the_first_drifted_window_only(self, family_api: Api) -> None:
        headers = family_api.key("mixed")
        windows = [_events(w, 300, shifted=w >= 5, seed=w) for w in range(7)]
        _run(family_api, headers, windows)
        rows = _families(family_api, headers)
        flagged = {start for (start, _), row in rows.items() if row["flagged"]}
        assert flagged == {_start(5), _start(6)}
        assert rows[(_start(5), "features")]["flagged"]
        assert rows[(_start(5), "prompt")]["flagged"]
        assert not rows[(_start(5), "response")]["flagged"]
        assert {"feature.a", "feature.b", "feature.c"} <= set(
            rows[(_start(5), "features")]["details"]["drifted_columns"]
        )
        assert rows[(_start(5), "features")]["details"]["strongest_effect"] >= 0.1
        dataset = family_api.client.get(
            "/v1/stats/drift", params={"metric": "dataset_drift", "model": MODEL}, headers=headers
        ).json()
        assert not any(row["flagged"] for row in dataset)  # evidently's share rule misses this shift
        alerts = family_api.client.get("/v1/alerts", headers=headers).json()
        drift_alerts = [a for a in alerts if a["monitor_id"] == "default-family-drift"]
        assert [a["window_start"] for a in drift_alerts] == [_start(5)]  # window 6 is inside the cooldown

    def test_stationary_traffic_stays_silent(self, family_api: Api) -> None:
        headers = family_api.key("calm")
        _run(family_api, headers, [_events(w, 300, shifted=False, seed=100 + w) for w in range(8)])
        rows = _families(family_api, headers)
        assert len({start for start, _ in rows}) == 7  # every window after the reference has verdicts
        assert not any(row["flagged"] for row in rows.values())
        alerts = family_api.client.get("/v1/alerts", headers=headers).json()
        assert not [a for a in alerts if a["monitor_id"] == "default-family-drift"]


class TestEmbeddingFamily:
    """Stored embeddings are compared with the reference window's: a verdict per window, flagged on a shift."""

    def test_embedding_shift(self, family_api: Api) -> None:
        headers = family_api.key("emb")
        windows = [
            _events(w, 300, shifted=False, embedding_shift=0.5 if w == 3 else 0.0, seed=200 + w) for w in range(5)
        ]
        _run(family_api, headers, windows)
        rows = _families(family_api, headers)
        embedding = {start: row for (start, family), row in rows.items() if family == "embedding"}
        assert sorted(embedding) == [_start(w) for w in range(1, 5)]
        assert [embedding[_start(w)]["flagged"] for w in range(1, 5)] == [False, False, True, False]
        shifted = embedding[_start(3)]
        assert shifted["details"]["strongest_column"] == "embedding"
        assert shifted["threshold"] == pytest.approx(FAMILY_ALPHA / 4)  # features, prompt, response, embedding
        assert not any(row["flagged"] for (start, family), row in rows.items() if family != "embedding")


def _versioned(window: int, n: int, *, seed: int) -> list[dict]:
    """Half the traffic on v1 (as before), half on v2, whose features moved (a canary that changed inputs)."""
    out = []
    for version, shifted in (("v1", False), ("v2", window >= 1)):
        for event in _events(window, n, shifted=shifted, seed=seed + (0 if version == "v1" else 500)):
            out.append({**event, "event_id": f"{event['event_id']}-{version}", "model_version": version})
    return out


def _thumbs(window: int, n: int) -> list[dict]:
    """v1 users happy (90 % up), v2 users from window 1 on mostly unhappy (40 % up)."""
    out = []
    for version in ("v1", "v2"):
        up_share = 0.4 if version == "v2" and window >= 1 else 0.9
        out += [
            {
                "inference_id": f"w{window}-{i}-{version}",
                "kind": "thumbs",
                "feedback_id": f"t{window}-{i}-{version}",
                "value": 1 if i < up_share * n else -1,
            }
            for i in range(n)
        ]
    return out


class TestPerVersion:
    """Drift and quality rows per model version; the compare endpoint puts two versions side by side."""

    def test_version_rows_and_compare(self, family_api: Api) -> None:
        headers = family_api.key("canary")
        for w in range(3):
            _post(family_api, headers, _versioned(w, 200, seed=300 + w))
        thumbs = [fb for w in range(3) for fb in _thumbs(w, 100)]
        assert family_api.client.post("/v1/feedback", content=orjson.dumps(thumbs), headers=headers).status_code == 202
        _run(family_api, headers, [], close_at=5)
        for version, drifted in (("v1", False), ("v2", True)):
            params = {"metric": "family_drift", "model": MODEL, "model_version": version, "dimension": "features"}
            rows = family_api.client.get("/v1/stats/drift", params=params, headers=headers).json()
            assert [row["window_start"] for row in rows] == [_start(1), _start(2)]
            assert [row["flagged"] for row in rows] == [drifted, drifted]
            quality = family_api.client.get(
                "/v1/stats/quality", params={"metric": "thumbs_up_rate", "model_version": version}, headers=headers
            ).json()
            assert [row["value"] for row in quality] == [
                0.9,
                0.9 if version == "v1" else 0.4,
                0.9 if version == "v1" else 0.4,
            ]
        model_wide = family_api.client.get(
            "/v1/stats/quality", params={"metric": "thumbs_up_rate"}, headers=headers
        ).json()
        assert [row["value"] for row in model_wide] == [0.9, 0.65, 0.65]

        since = T0.isoformat()
        response = family_api.client.get(
            f"/v1/models/{MODEL}/compare", params={"a": "v1", "b": "v2", "since": since}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["events_a"], body["events_b"]) == (600, 600)
        metrics = {(m["metric"], m["dimension"]): m for m in body["metrics"]}
        thumbs_row = metrics[("thumbs_up_rate", "")]
        assert thumbs_row["a"] == pytest.approx(0.9)
        assert thumbs_row["b"] == pytest.approx((90 + 40 + 40) / 300)
        assert thumbs_row["significant"]
        assert thumbs_row["p_value"] < 1e-6
        assert metrics[("family_drift", "features")]["significant"]
        assert not metrics[("family_drift", "response")]["significant"]
        assert not metrics[("error_rate", "")]["significant"]

    def test_compare_refuses_unknown_versions_and_empty_ranges(self, family_api: Api) -> None:
        headers = family_api.key("canary-errors")
        _post(family_api, headers, _versioned(0, 50, seed=1))
        family_api.wait_written()
        url = f"/v1/models/{MODEL}/compare"
        since, until = T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()

        def status(**params: str) -> int:
            return family_api.client.get(url, params=params, headers=headers).status_code

        assert status(a="v1", b="v2", since=since, until=until) == 200
        assert status(a="v1", b="v9", since=since, until=until) == 404  # unknown version
        assert status(a="v1", b="v2", since=until, until=(T0 + timedelta(hours=2)).isoformat()) == 404  # no events
        assert status(a="v1", b="v2", since=until, until=since) == 422  # empty range
        assert (
            family_api.client.get(
                url.replace(MODEL, "nope"), params={"a": "v1", "b": "v2", "since": since}, headers=headers
            ).status_code
            == 404
        )
