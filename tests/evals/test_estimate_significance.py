"""The estimated thumbs-up rate per model and version, against the reference, calibrated per model (real app,
real chDB, alerts to a webhook receiver on 127.0.0.1): a judge that reads two models differently gets each
model's own fit, a model with few pairs the pooled one, a version whose judged calls score lower is
significantly down against the reference, and monitors "estimated thumbs-up rate down at p < 0.01" and
"judge score down at p < 0.01" alert through the normal path."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from detectors.calibration import fit_platt
from loopwatch.demo.receiver import WebhookReceiver
from tests.conftest import Api
from tests.evals.conftest import WINDOW
from tests.evals.test_judge_agreement import T0, judged, people, post
from tests.monitors.conftest import webhook
from tests.waiting import wait_until

TARGET = T0 + timedelta(minutes=10)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def spread(prefix: str, model: str, n: int, start: datetime, version: str = "v1") -> list[dict[str, Any]]:
    """``n`` calls of ``model`` spread over one window, with texts (so the first window becomes the reference)."""
    step = WINDOW * 0.9 / n
    return [
        {
            "event_id": f"{prefix}-{i}",
            "model": model,
            "model_version": version,
            "timestamp": (start + timedelta(seconds=i * step)).isoformat(),
            "prompt": f"question number {i} about the invoice",
            "response": f"answer {i}: see the billing page",
        }
        for i in range(n)
    ]


def rows(api: Api, headers: dict[str, str], model: str, metric: str, version: str = "") -> list[dict[str, Any]]:
    api.client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]
    params = {
        "model": model,
        "metric": metric,
        "model_version": version,
        "since": TARGET.isoformat(),
        "until": (TARGET + timedelta(seconds=WINDOW)).isoformat(),
    }
    response = api.client.get("/v1/stats/quality", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [row for row in response.json() if row["model_version"] == version]


def estimated(
    api: Api, headers: dict[str, str], model: str, version: str = "", *, tested: bool = True
) -> dict[str, Any]:
    """The target window's estimate (``tested``: once it has its p-value against the reference)."""

    def found() -> list[dict[str, Any]]:
        found = rows(api, headers, model, "estimated_thumbs_up_rate", version)
        return [r for r in found if r["p_value"] is not None or not tested]

    (row,) = wait_until(found, f"the estimate of {model} {version or 'all versions'} with its p-value")
    return row


class TestEstimatePerModelAndVersion:
    """Each model's own calibration (pooled below 30 pairs), version rows, and p < 0.01 monitors that alert."""

    def test_per_model_calibration_version_rows_and_monitors(self, stats_app: tuple[Api, WebhookReceiver]) -> None:
        api, hook = stats_app
        headers = api.key("estimate-significance")
        for metric in ("estimated_thumbs_up_rate", "score_mean"):
            monitor = {
                "name": f"{metric} down",
                "scope": "chat",
                "family": "quality",
                "metric": metric,
                "dimension": "relevance",
                "condition": {"type": "p_value", "alpha": 0.01},
                "cooldown_seconds": 0,
                "channels": [webhook(hook.url)],
            }
            assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
        rng = np.random.default_rng(21)
        # reference windows: every call judged and thumbed; the judge reads the two models differently
        chat, other, tiny = spread("c", "chat", 300, T0), spread("o", "other", 300, T0), spread("s", "tiny", 5, T0)
        chat_scores, other_scores, tiny_scores = rng.random(300), rng.random(300), rng.random(5)
        chat_ups = rng.random(300) < sigmoid(6 * (chat_scores - 0.5))
        other_ups = rng.random(300) < sigmoid(8 * (other_scores - 0.85))  # "other" needs a high score for a thumb
        tiny_ups = np.array([True, False, True, False, True])
        post(api, headers, "/v1/inferences", chat + other + tiny)
        api.wait_written()
        feedback = []
        for planted, scores, ups in ((chat, chat_scores, chat_ups), (other, other_scores, other_ups),
                                     (tiny, tiny_scores, tiny_ups)):  # fmt: skip
            for call, score, up in zip(planted, scores, ups, strict=True):
                at = datetime.fromisoformat(call["timestamp"])
                feedback += [judged("relevance", call["event_id"], at, float(score)),
                             people(call["event_id"], at + timedelta(minutes=5), "thumbs", bool(up))]  # fmt: skip
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()

        # the target window: chat v1 judged as before, chat v2 judged low; other and tiny as before; no thumbs
        v1, v2 = spread("c1", "chat", 100, TARGET), spread("c2", "chat", 100, TARGET, "v2")
        v2 = [
            {**call, "timestamp": (TARGET + timedelta(seconds=i * 0.5 + 0.25)).isoformat()} for i, call in enumerate(v2)
        ]
        others, tinies = spread("o1", "other", 200, TARGET), spread("s1", "tiny", 20, TARGET)
        closers = [
            {"event_id": f"z-{model}", "model": model, "timestamp": (T0 + timedelta(minutes=30)).isoformat()}
            for model in ("chat", "other", "tiny")
        ]
        post(api, headers, "/v1/inferences", v1 + v2 + others + tinies + closers)
        api.wait_written()
        scores = {"v1": rng.random(100), "v2": rng.random(100) * 0.4, "other": rng.random(200), "tiny": rng.random(20)}
        feedback = []
        for planted, values in ((v1, scores["v1"]), (v2, scores["v2"]), (others, scores["other"]),
                                (tinies, scores["tiny"])):  # fmt: skip
            feedback += [
                judged("relevance", c["event_id"], datetime.fromisoformat(c["timestamp"]), float(s))
                for c, s in zip(planted, values, strict=True)
            ]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()

        # each model its own fit: "other"'s estimate is its own calibration's, far from the pooled one's
        own = fit_platt(other_scores, other_ups)
        pooled = fit_platt(
            np.concatenate([chat_scores, other_scores, tiny_scores]), np.concatenate([chat_ups, other_ups, tiny_ups])
        )
        row = estimated(api, headers, "other")
        assert (row["details"]["calibration"], row["details"]["model_pairs"], row["details"]["pairs"]) == (
            "model", 300, 300,
        )  # fmt: skip
        assert row["value"] == pytest.approx(float(own.predict(scores["other"]).mean()), abs=1e-9)
        assert abs(row["value"] - float(pooled.predict(scores["other"]).mean())) > 0.1
        assert row["details"]["reference"] == pytest.approx(float(own.predict(other_scores).mean()), abs=1e-9)
        # a model with 5 pairs of its own is calibrated on every model's, and says so
        row = estimated(api, headers, "tiny", tested=False)  # too few calls for a reference of its own
        assert (row["details"]["calibration"], row["details"]["model_pairs"], row["details"]["pairs"]) == (
            "pooled", 5, 605,
        )  # fmt: skip
        assert row["value"] == pytest.approx(float(pooled.predict(scores["tiny"]).mean()), abs=1e-9)

        # chat per version, through chat's own fit: v2's judged calls score lower, down at p < 0.01; v1 is not
        chat_fit = fit_platt(chat_scores, chat_ups)
        reference = float(chat_fit.predict(chat_scores).mean())
        low, same = estimated(api, headers, "chat", "v2"), estimated(api, headers, "chat", "v1")
        assert low["value"] == pytest.approx(float(chat_fit.predict(scores["v2"]).mean()), abs=1e-9)
        assert same["value"] == pytest.approx(float(chat_fit.predict(scores["v1"]).mean()), abs=1e-9)
        for version_row in (low, same):
            details = version_row["details"]
            assert (details["calibration"], details["judged_calls"], details["reference_judged_calls"]) == (
                "model", 100, 300,
            )  # fmt: skip
            assert details["reference"] == pytest.approx(reference, abs=1e-9)
            assert details["test"] == "two_proportion_z"
        assert low["p_value"] < 0.01 and low["flagged"]
        assert same["p_value"] > 0.01 and not same["flagged"]
        model_wide = estimated(api, headers, "chat")
        assert model_wide["sample_size"] == 200 and model_wide["p_value"] < 0.01

        def alerts() -> dict[str, dict[str, Any]]:
            found = {r.json["metric"]: r.json for r in list(hook.requests) if r.event_type == "alert"}
            return found if set(found) == {"estimated_thumbs_up_rate", "score_mean"} else {}

        fired = wait_until(alerts, "both p < 0.01 alerts")
        for metric, alert in fired.items():
            assert (alert["model"], alert["dimension"]) == ("chat", "relevance"), metric
            assert alert["window_start"].startswith("2026-11-02T10:10:00"), metric
