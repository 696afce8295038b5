"""The estimated thumbs-up rate per model and version, against the reference, calibrated per model (real app,
real chDB, alerts to a webhook receiver on 127.0.0.1): a judge that reads two models differently gets each
model's own fit, a model with few pairs the pooled one, a version whose judged calls score lower is
significantly down against the reference, and monitors "estimated thumbs-up rate down at p < 0.01" and
"judge score down at p < 0.01" alert through the normal path. In headless Chromium, the window page
lists the estimate with its p-value and calibration, and the model page charts it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from detectors.calibration import fit_platt
from loopwatch._server import BackgroundServer, free_port
from loopwatch.demo.receiver import WebhookReceiver
from loopwatch.process import serving_app
from tests.conftest import Api, make_settings
from tests.evals.conftest import WINDOW
from tests.evals.judge_server import JudgeServer
from tests.evals.test_judge_agreement import T0, agreement, judged, people, post
from tests.monitors.conftest import webhook
from tests.ui.conftest import UI_SECRET
from tests.ui.test_browser import (  # noqa: F401 - the browser fixtures
    browser,
    check_accessibility,
    console_problems,
    downloads,
    screenshot,
    sign_in,
)
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
        relevance = {"evaluator_id": "relevance", "name": "Relevance", "kind": "code", "code": {"check": "json_valid"},
                     "sampling_rate": 0}  # fmt: skip
        assert api.client.post("/v1/evaluators", json=relevance, headers=headers).status_code == 201
        rng = np.random.default_rng(21)
        # reference windows: every call judged and thumbed; the judge reads the two models differently
        chat, other, tiny = spread("c", "chat", 300, T0), spread("o", "other", 300, T0), spread("s", "tiny", 5, T0)
        chat_scores, other_scores, tiny_scores = rng.random(300), rng.random(300), rng.random(5)
        chat_ups = rng.random(300) < sigmoid(6 * (chat_scores - 0.5))
        other_ups = rng.random(300) < sigmoid(8 * (other_scores - 0.85))  # "other" needs a high score for a thumb
        tiny_ups = np.array([True, False, True, False, True])
        noisy, noisy_scores = spread("n", "noisy", 40, T0), rng.random(40)  # thumbs the judge does not predict
        noisy_ups = np.arange(40) % 2 == 0
        post(api, headers, "/v1/inferences", chat + other + tiny + noisy)
        api.wait_written()
        feedback = []
        for planted, scores, ups in ((chat, chat_scores, chat_ups), (other, other_scores, other_ups),
                                     (tiny, tiny_scores, tiny_ups), (noisy, noisy_scores, noisy_ups)):  # fmt: skip
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
        noisies = spread("n1", "noisy", 20, TARGET)
        closers = [
            {"event_id": f"z-{model}", "model": model, "timestamp": (T0 + timedelta(minutes=30)).isoformat()}
            for model in ("chat", "other", "tiny", "noisy")
        ]
        post(api, headers, "/v1/inferences", v1 + v2 + others + tinies + noisies + closers)
        api.wait_written()
        scores = {"v1": rng.random(100), "v2": rng.random(100) * 0.4, "other": rng.random(200), "tiny": rng.random(20)}
        feedback = []
        for planted, values in ((v1, scores["v1"]), (v2, scores["v2"]), (others, scores["other"]),
                                (tinies, scores["tiny"]), (noisies, rng.random(20))):  # fmt: skip
            feedback += [
                judged("relevance", c["event_id"], datetime.fromisoformat(c["timestamp"]), float(s))
                for c, s in zip(planted, values, strict=True)
            ]
        post(api, headers, "/v1/feedback", feedback)
        api.wait_written()

        # each model its own fit: "other"'s estimate is its own calibration's, far from the pooled one's
        own = fit_platt(other_scores, other_ups)
        pooled = fit_platt(
            np.concatenate([chat_scores, other_scores, tiny_scores, noisy_scores]),
            np.concatenate([chat_ups, other_ups, tiny_ups, noisy_ups]),
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
            "pooled", 5, 645,
        )  # fmt: skip
        assert row["value"] == pytest.approx(float(pooled.predict(scores["tiny"]).mean()), abs=1e-9)
        # the agreement API says the same per model: its own pairs, and which fit it would use
        own_other = agreement(api, headers, "relevance", model="other")
        assert (own_other["n"], own_other["calibration"]["fitted_on"], own_other["calibration"]["pairs"]) == (
            300, "model", 300,
        )  # fmt: skip
        assert own_other["calibration"]["slope"] == pytest.approx(own.slope, rel=1e-6)
        assert own_other["calibration"]["estimate"]["judged_calls"] == 500
        own_tiny = agreement(api, headers, "relevance", model="tiny")
        assert (own_tiny["n"], own_tiny["calibration"]["fitted_on"], own_tiny["calibration"]["pairs"]) == (
            5, "pooled", 645,
        )  # fmt: skip
        assert own_tiny["calibration"]["estimate"]["judged_calls"] == 25
        every = agreement(api, headers, "relevance")
        assert (every["n"], every["calibration"]["fitted_on"]) == (645, "all")
        # 40 pairs of its own, the judge unrelated to its thumbs: no estimate (not the pooled one), though
        # the window's quality was computed (its judge scores are there)
        wait_until(lambda: rows(api, headers, "noisy", "score_mean"), "the noisy model's judge scores")  # same write
        assert rows(api, headers, "noisy", "estimated_thumbs_up_rate") == []
        noisy_agreement = agreement(api, headers, "relevance", model="noisy")["calibration"]
        assert (noisy_agreement["fitted_on"], noisy_agreement["usable"]) == ("model", False)
        empty = api.client.get("/v1/evaluators/relevance/agreement", params={"model": ""}, headers=headers)
        assert empty.status_code == 422
        assert empty.json()["detail"][0]["loc"] == ["query", "model"]

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
            assert details["test"] == "welch_t"
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


@pytest.fixture
def live(data_dir: Path) -> Iterator[tuple[str, str]]:
    """A real server on 127.0.0.1 with statistics on (one-minute windows, as ``stats_app``)."""
    settings = make_settings(
        data_dir,
        window_seconds=WINDOW,
        allowed_lateness_seconds=0,
        quality_refresh_seconds=0.01,
        stats_enabled=True,
        ui_secret=UI_SECRET,
        evaluator_allowed_hosts="127.0.0.1",
    )
    server = BackgroundServer(serving_app(settings), free_port()).start()
    services = server.app.state.runtime
    try:
        yield server.url, services.keys.create("estimate-ui", "ui").token
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def test_window_and_model_pages_show_the_estimate(
    browser: WebDriver,  # noqa: F811
    live: tuple[str, str],
    judge: JudgeServer,
) -> None:
    """A reference window judged and thumbed, then a window judged lower: its page lists the estimate
    beside people's and the judge's statistics, with reference, p-value, interval and calibration; the
    model page charts the estimate per judge."""
    url, token = live
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def send(path: str, items: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{url}{path}", content=orjson.dumps(items), headers=headers)
        assert response.status_code == 202, response.text

    spec = {"evaluator_id": "relevance", "name": "Relevance", "kind": "llm_judge", "template": "answer_relevance",
            "sampling_rate": 0, "judge": {"base_url": judge.base_url, "model": "judge-1"}}  # fmt: skip
    assert httpx.post(f"{url}/v1/evaluators", json=spec, headers=headers).status_code == 201
    rng = np.random.default_rng(31)
    reference, scores = spread("r", "chat", 300, T0), rng.random(300)
    ups = rng.random(300) < sigmoid(6 * (scores - 0.5))
    send("/v1/inferences", reference)
    feedback = []
    for call, score, up in zip(reference, scores, ups, strict=True):
        at = datetime.fromisoformat(call["timestamp"])
        feedback += [judged("relevance", call["event_id"], at, float(score)),
                     people(call["event_id"], at + timedelta(minutes=5), "thumbs", bool(up))]  # fmt: skip
    send("/v1/feedback", feedback)
    period = {"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}

    def paired() -> bool:
        found = httpx.get(f"{url}/v1/evaluators/relevance/agreement", params=period, headers=headers)
        return found.status_code == 200 and found.json()["n"] == 300

    wait_until(paired, "the reference window's pairs stored")  # before the reference's quality is read
    target = spread("t", "chat", 200, TARGET)
    send(
        "/v1/inferences",
        [*target, {"event_id": "z", "model": "chat", "timestamp": (T0 + timedelta(minutes=30)).isoformat()}],
    )
    send("/v1/feedback", [
        judged("relevance", c["event_id"], datetime.fromisoformat(c["timestamp"]), float(s))
        for c, s in zip(target, rng.random(200) * 0.5, strict=True)
    ])  # fmt: skip

    def tested() -> bool:
        params = {"model": "chat", "metric": "estimated_thumbs_up_rate", "since": TARGET.isoformat(),
                  "until": (TARGET + timedelta(seconds=WINDOW)).isoformat()}  # fmt: skip
        found = httpx.get(f"{url}/v1/stats/quality", params=params, headers=headers).json()
        return any(r["p_value"] is not None and r["model_version"] == "" for r in found)

    wait_until(tested, "the target window's estimate with its p-value")
    sign_in(browser, url, token)
    browser.get(f"{url}/ui/models/chat/windows/{quote(TARGET.isoformat(), safe='')}")
    row = browser.find_element(By.CSS_SELECTOR, "#quality-tests tr[data-metric='estimated_thumbs_up_rate']")
    cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[0:2] == ["estimated thumbs up rate", "relevance"]
    assert cells[4] == "200 vs 300"  # judged calls: the window's and the reference's
    assert float(cells[5]) < 0.01
    assert (cells[6], cells[7]) == ("Welch's t", "worse")
    assert "Platt fit on 300 calls with both, this model's own" in cells[8]
    score = browser.find_element(By.CSS_SELECTOR, "#quality-tests tr[data-metric='score_mean']")
    assert "Mann–Whitney U" in score.text
    check_accessibility(browser, "window quality")
    screenshot(browser, "window-quality")
    browser.get(
        f"{url}/ui/models/chat?since={quote(T0.isoformat(), safe='')}&until={quote((T0 + timedelta(hours=1)).isoformat(), safe='')}"
    )
    chart = browser.find_element(By.ID, "chart-estimated_thumbs_up_rate-data")
    data = orjson.loads(chart.get_attribute("textContent") or "{}")["data"]
    assert [trace["name"] for trace in data] == ["from relevance"]
    screenshot(browser, "model-estimated-thumbs")
    assert console_problems(browser) == []
