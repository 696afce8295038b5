"""A judge against people, end to end (real app, real chDB): ``GET /v1/evaluators/{id}/agreement`` on
planted judge/people pairs, the window statistic ``estimated_thumbs_up_rate`` checked against thumbs held
back from its calibration, a monitor on it alerting a webhook on 127.0.0.1, and ground truth that comes
from people only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from loopwatch.demo.receiver import WebhookReceiver
from tests.conftest import Api
from tests.evals.conftest import WINDOW, judge_evaluator
from tests.evals.judge_server import JudgeServer
from tests.monitors.conftest import webhook
from tests.waiting import wait_until

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
PERIOD = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
IS_JSON = {
    "evaluator_id": "is-json",
    "name": "JSON",
    "kind": "code",
    "code": {"check": "json_valid"},
    "sampling_rate": 0,
}


def post(api: Api, headers: dict[str, str], path: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 1000):
        response = api.client.post(path, content=orjson.dumps(items[start : start + 1000]), headers=headers)
        assert response.status_code == 202, response.text


def calls(prefix: str, n: int, start: datetime, **fields: Any) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "model": "chat",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            **fields,
        }
        for i in range(n)
    ]


def judged(evaluator_id: str, call: str, at: datetime, value: Any, kind: str = "score") -> dict[str, Any]:
    return {
        "feedback_id": f"{evaluator_id}-{call}",
        "inference_id": call,
        "timestamp": at.isoformat(),
        "kind": kind,
        "value": value,
        "name": evaluator_id,
        "source": "evaluator",
    }


def people(call: str, at: datetime, kind: str, value: Any, suffix: str = "") -> dict[str, Any]:
    return {
        "feedback_id": f"p-{kind}-{call}{suffix}",
        "inference_id": call,
        "timestamp": at.isoformat(),
        "kind": kind,
        "value": value,
        "source": "user",
    }


def agreement(api: Api, headers: dict[str, str], evaluator_id: str, **params: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/evaluators/{evaluator_id}/agreement", params={**PERIOD, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestAgreementApi:
    """Planted judge/people pairs give the kappa or Spearman the libraries compute on them, with n and CI."""

    def test_kappa_of_a_boolean_judge_against_thumbs(self, api: Api) -> None:
        headers = api.key("kappa")
        assert api.client.post("/v1/evaluators", json=IS_JSON, headers=headers).status_code == 201
        # the textbook table: judge 1 & up 20, 1 & down 5, 0 & up 10, 0 & down 15 → kappa 0.4
        judge = [1] * 25 + [0] * 25
        thumbs = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
        planted = calls("k", 50, T0)
        outside = calls("old", 5, T0 - timedelta(days=1))  # judged and thumbed, but before the period
        lonely = calls("lone", 4, T0 + timedelta(minutes=5))  # only a judge result, or only a thumb
        post(api, headers, "/v1/inferences", planted + outside + lonely)
        later = T0 + timedelta(minutes=30)
        feedback = [judged("is-json", c["event_id"], T0, j) for c, j in zip(planted, judge, strict=True)]
        feedback += [people(c["event_id"], later, "thumbs", t) for c, t in zip(planted, thumbs, strict=True)]
        feedback[0:0] = [people("k-49", T0 + timedelta(minutes=1), "thumbs", True, "-first")]  # replaced by "down"
        feedback += [judged("is-json", c["event_id"], T0 - timedelta(days=1), 1) for c in outside]
        feedback += [people(c["event_id"], later, "thumbs", False) for c in outside]
        feedback += [judged("is-json", "lone-0", T0, 1), people("lone-1", later, "thumbs", True)]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()
        body = agreement(api, headers, "is-json")
        table = np.array([[20, 5], [10, 15]])
        expected = cohens_kappa(table)
        assert (body["n"], body["statistic"]) == (50, "cohen_kappa")
        assert body["value"] == pytest.approx(0.4, abs=1e-12)
        assert (body["low"], body["high"]) == pytest.approx((expected.kappa_low, expected.kappa_upp), abs=1e-6)
        assert body["reading"] == "fair agreement"  # 0.4 is the top of Landis & Koch's "fair"
        calibration = body["calibration"]
        assert (calibration["method"], calibration["pairs"]) == ("platt", 50)
        assert calibration["people_thumbs_up_rate"] == pytest.approx(0.6)
        assert calibration["estimate"]["judged_calls"] == 51  # lone-0 is judged, without a thumb

    def test_spearman_of_a_score_judge_against_ratings(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("rho")
        body = judge_evaluator(judge, sampling_rate=0)
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        rng = np.random.default_rng(3)
        scores = np.round(rng.random(40), 3)
        ratings = np.clip(np.round(scores * 4 + 1 + rng.normal(0, 1, 40)), 1, 5)
        planted = calls("r", 40, T0)
        post(api, headers, "/v1/inferences", planted)
        feedback = [judged("relevance", c["event_id"], T0, float(s)) for c, s in zip(planted, scores, strict=True)]
        later = T0 + timedelta(minutes=10)
        feedback += [people(c["event_id"], later, "rating", int(r)) for c, r in zip(planted, ratings, strict=True)]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()
        found = agreement(api, headers, "relevance", against="rating")
        interval = pearsonr(rankdata(scores), rankdata(ratings)).confidence_interval(0.95)
        assert (found["n"], found["statistic"], found["calibration"]) == (40, "spearman", None)
        assert found["value"] == pytest.approx(spearmanr(scores, ratings).statistic, abs=1e-9)
        assert (found["low"], found["high"]) == pytest.approx((interval.low, interval.high), abs=1e-9)
        assert found["interval"].startswith("Fisher z")

    def test_kappa_of_a_label_judge_counts_people_only(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("labels")
        body = judge_evaluator(
            judge, evaluator_id="topic", sampling_rate=0, template=None,
            prompt_template="Topic of {response}?", output={"type": "label", "labels": ["billing", "tech", "other"]},
        )  # fmt: skip
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        rng = np.random.default_rng(5)
        truth = rng.choice(["billing", "tech", "other"], 60)
        guess = np.where(rng.random(60) < 0.75, truth, rng.choice(["billing", "tech", "other"], 60))
        planted = calls("l", 60, T0)
        post(api, headers, "/v1/inferences", planted)
        later = T0 + timedelta(minutes=10)
        feedback = [judged("topic", c["event_id"], T0, str(g), "label") for c, g in zip(planted, guess, strict=True)]
        feedback += [people(c["event_id"], later, "label", str(t)) for c, t in zip(planted, truth, strict=True)]
        # another evaluator's labels, newer than people's: results of judges are never people's feedback
        feedback += [
            judged("other-judge", c["event_id"], later + timedelta(minutes=1), "other", "label") for c in planted
        ]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()
        found = agreement(api, headers, "topic")  # a label judge is compared with labels unless told
        assert (found["n"], found["statistic"], found["against"]) == (60, "cohen_kappa", "label")
        assert found["value"] == pytest.approx(cohen_kappa_score(guess, truth), abs=1e-12)

    def test_precise_errors(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("errors")
        assert api.client.post("/v1/evaluators", json=IS_JSON, headers=headers).status_code == 201
        labels = judge_evaluator(
            judge, evaluator_id="topic", template=None, prompt_template="Topic of {response}?",
            output={"type": "label", "labels": ["a", "b"]},
        )  # fmt: skip
        assert api.client.post("/v1/evaluators", json=labels, headers=headers).status_code == 201
        missing = api.client.get("/v1/evaluators/nope/agreement", headers=headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no evaluator 'nope' in this project"

        def problem(evaluator_id: str, **params: str) -> dict[str, Any]:
            response = api.client.get(f"/v1/evaluators/{evaluator_id}/agreement", params=params, headers=headers)
            assert response.status_code == 422, response.text
            return dict(response.json()["detail"][0])

        thumbs = problem("topic", against="thumbs")
        assert thumbs["loc"] == ["query", "against"]
        assert (
            thumbs["msg"] == "evaluator 'topic' gives labels, which cannot be compared with thumbs; use against=label"
        )
        label = problem("is-json", against="label")
        assert (
            "gives scores, which cannot be compared with labels; use against=thumbs or against=rating" in label["msg"]
        )
        backwards = problem("is-json", **{"from": PERIOD["to"], "to": PERIOD["from"]})
        assert backwards["msg"] == "'from' must be before 'to'"
        assert problem("is-json", against="stars")["loc"] == ["query", "against"]
        empty = agreement(api, headers, "is-json")
        assert (empty["n"], empty["value"], empty["reading"]) == (0, None, "undefined")
        reason = empty["calibration"]["reason"]
        assert reason == "only 0 calls have both a judge score and a thumb; 30 needed"
        assert empty["calibration"]["estimate"]["rate"] is None


def quality(api: Api, headers: dict[str, str], metric: str, start: datetime) -> list[dict[str, Any]]:
    """The window's rows of ``metric``, after closing due windows and refreshing late feedback."""
    api.client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]
    params = {
        "model": "chat",
        "metric": metric,
        "since": start.isoformat(),
        "until": (start + timedelta(seconds=WINDOW)).isoformat(),
    }
    response = api.client.get("/v1/stats/quality", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


class TestEstimatedThumbsUpRate:
    """Fitted on calls with both a score and a thumb, a window's estimate covers the thumbs held back from
    it, and a monitor on it alerts like one on thumbs_up_rate."""

    def test_estimate_covers_held_back_thumbs_and_a_monitor_fires(self, stats_app: tuple[Api, WebhookReceiver]) -> None:
        api, hook = stats_app
        headers = api.key("estimate")
        monitor = {
            "name": "Judged quality low",
            "family": "quality",
            "metric": "estimated_thumbs_up_rate",
            "dimension": "relevance",
            "condition": {"type": "threshold", "operator": "lt", "value": 0.35},
            "cooldown_seconds": 0,
            "channels": [webhook(hook.url)],
        }
        assert api.client.post("/v1/monitors", json=monitor, headers=headers).status_code == 201
        rng = np.random.default_rng(11)

        def p_up(scores: np.ndarray) -> np.ndarray:
            return np.asarray(1 / (1 + np.exp(-6 * (scores - 0.5))))

        fit_scores = rng.random(300)
        fit_ups = rng.random(300) < p_up(fit_scores)
        target = T0 + timedelta(minutes=10)
        target_scores = rng.random(200) * 0.4  # a worse window: the judge scores it low
        held_back = rng.random(200) < p_up(target_scores)
        fit_calls = [
            {**c, "timestamp": (T0 + timedelta(seconds=i)).isoformat()} for i, c in enumerate(calls("f", 300, T0))
        ]
        target_calls = [
            {**c, "timestamp": (target + timedelta(seconds=i * 0.25)).isoformat()}
            for i, c in enumerate(calls("t", 200, T0))
        ]
        closer = calls("z", 1, T0 + timedelta(minutes=30))  # its watermark closes every window above
        post(api, headers, "/v1/inferences", fit_calls + target_calls + closer)
        api.wait_written()
        thumbs_at = T0 + timedelta(minutes=20)
        feedback = [
            judged("relevance", c["event_id"], datetime.fromisoformat(c["timestamp"]), float(s))
            for c, s in zip(fit_calls + target_calls, [*fit_scores, *target_scores], strict=True)
        ]
        feedback += [
            people(c["event_id"], thumbs_at, "thumbs", bool(u)) for c, u in zip(fit_calls, fit_ups, strict=True)
        ]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()

        (row,) = wait_until(lambda: quality(api, headers, "estimated_thumbs_up_rate", target), "the window's estimate")
        actual = float(held_back.mean())
        details = row["details"]
        assert row["dimension"] == "relevance"
        assert row["sample_size"] == details["judged_calls"] == 200
        assert details["pairs"] == 300
        assert details["method"] == "platt"
        assert details["low"] <= actual <= details["high"], (actual, row)
        assert details["low"] <= row["value"] <= details["high"]
        assert row["value"] < 0.35

        alert = hook.wait_for_event("alert", timeout=30).json
        assert (alert["metric"], alert["dimension"], alert["model"]) == (
            "estimated_thumbs_up_rate",
            "relevance",
            "chat",
        )
        assert alert["window_start"].startswith("2026-11-02T10:10:00")

        # the held-back thumbs arrive: the window's measured rate is what the estimate's interval covered
        post(
            api,
            headers,
            "/v1/feedback",
            [people(c["event_id"], thumbs_at, "thumbs", bool(u)) for c, u in zip(target_calls, held_back, strict=True)],
        )
        api.wait_written()

        def measured() -> list[dict[str, Any]]:
            rows = quality(api, headers, "thumbs_up_rate", target)
            return rows if rows and rows[0]["sample_size"] == 200 else []

        (thumbs,) = wait_until(measured, "the window's thumbs-up rate")
        assert thumbs["value"] == pytest.approx(actual)
        assert details["low"] <= thumbs["value"] <= details["high"]

    def test_ground_truth_labels_come_from_people_only(self, stats_app: tuple[Api, WebhookReceiver]) -> None:
        api, _ = stats_app
        headers = api.key("truth")
        window_calls = calls("a", 20, T0, prediction="yes")
        post(api, headers, "/v1/inferences", window_calls + calls("z", 1, T0 + timedelta(minutes=5)))
        api.wait_written()
        at = T0 + timedelta(minutes=2)
        feedback = [people(c["event_id"], at, "label", "yes") for c in window_calls[:10]]
        # an evaluator labels every call "no": not ground truth, so accuracy stays 10 of 10 right
        feedback += [judged("verdict", c["event_id"], at, "no", "label") for c in window_calls]
        feedback += [judged("verdict-score", c["event_id"], at, 0.25) for c in window_calls]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()
        (accuracy,) = wait_until(lambda: quality(api, headers, "accuracy", T0), "the window's accuracy")
        assert (accuracy["value"], accuracy["sample_size"]) == (1.0, 10)
        (score,) = quality(api, headers, "score_mean", T0)
        assert (score["dimension"], score["value"], score["sample_size"]) == ("verdict-score", 0.25, 20)
