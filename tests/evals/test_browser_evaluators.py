"""The evaluators dashboard in a real headless Chromium: create a judge, preview it, see its scores
beside the calls. Screenshots go to tests/artifacts/ui/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from streams.runtime import Runtime
from tests.evals.judge_server import JudgeServer
from tests.ui.conftest import csrf_of, dashboard_settings
from tests.ui.test_browser import (  # noqa: F401 - the browser fixtures
    browser,
    check_accessibility,
    console_problems,
    downloads,
    screenshot,
    sign_in,
    wait,
)
from tests.waiting import wait_until

PROJECT = "ev-ui"


@pytest.fixture
def live(data_dir: Path, judge: JudgeServer) -> Iterator[tuple[str, Runtime, str]]:
    settings = dashboard_settings(data_dir, evaluator_allowed_hosts="127.0.0.1", evaluator_poll_seconds=0.05)
    server = BackgroundServer(serving_app(settings), free_port()).start()
    services: Runtime = server.app.state.runtime
    token = services.keys.create(PROJECT, "ui").token
    try:
        yield server.url, services, token
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def test_create_preview_and_see_scores(browser: WebDriver, live: tuple[str, Runtime, str], judge: JudgeServer) -> None:  # noqa: F811
    url, _, token = live
    calls = [
        {
            "event_id": f"ui-{i}",
            "model": "chat",
            "prompt": f"question {i}" + (" BAD" if i % 2 else ""),
            "response": "an answer",
        }
        for i in range(6)
    ]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    sign_in(browser, url, token)
    browser.get(f"{url}/ui/evaluators/new")
    browser.find_element(By.ID, "e-id").send_keys("relevance")
    browser.find_element(By.ID, "e-name").send_keys("Answer relevance")
    rate = browser.find_element(By.ID, "e-rate")
    rate.clear()
    rate.send_keys("1")
    browser.find_element(By.ID, "e-url").send_keys(judge.base_url)
    browser.find_element(By.ID, "e-model").send_keys("judge-1")
    Select(browser.find_element(By.ID, "e-template")).select_by_value("answer_relevance")
    assert not browser.find_element(By.ID, "e-check").is_displayed()  # the code check's fields are hidden
    check_accessibility(browser, "new evaluator")
    screenshot(browser, "evaluator-new")
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/evaluators/new'] button[type='submit']").click()
    wait(browser).until(lambda d: d.current_url.endswith("/ui/evaluators/relevance"))
    # calls arriving now are sampled (sampling happens as calls are written)
    assert httpx.post(f"{url}/v1/inferences", content=orjson.dumps(calls), headers=headers).status_code == 202

    browser.find_element(By.ID, "preview-button").click()
    rows = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview tbody tr"))
    assert len(rows) == 5
    assert {row.get_attribute("data-status") for row in rows} == {"done"}
    assert "weak answer" in browser.find_element(By.ID, "preview").text
    screenshot(browser, "evaluator-preview")

    def scored() -> bool:
        browser.get(f"{url}/ui/evaluators/relevance")
        return len(browser.find_elements(By.CSS_SELECTOR, "#scores tbody tr[data-status='done']")) == 6

    wait_until(scored, "six scores on the evaluator's page")
    check_accessibility(browser, "evaluator")
    screenshot(browser, "evaluator-scores")

    browser.get(f"{url}/ui/calls/ui-1")
    row = browser.find_element(By.CSS_SELECTOR, "#evaluations tr[data-evaluator='relevance']")
    assert "weak answer" in row.text
    assert "0.1" in row.text
    screenshot(browser, "call-evaluations")

    browser.get(f"{url}/ui/evaluators")
    assert browser.find_element(By.CSS_SELECTOR, "tr[data-evaluator='relevance']").text.count("6 done") == 1
    screenshot(browser, "evaluators")
    assert console_problems(browser) == []


def test_agreement_with_people_on_the_evaluator_page(
    browser: WebDriver,  # noqa: F811
    live: tuple[str, Runtime, str],
    judge: JudgeServer,
) -> None:
    """Judge scores and people's thumbs on the same calls: the page shows n, rho, its interval in words
    and the estimated thumbs-up rate; an evaluator without pairs says why there is none."""
    url, _, token = live
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    for evaluator_id in ("relevance", "fresh"):
        spec = {
            "evaluator_id": evaluator_id,
            "name": "Answer relevance" if evaluator_id == "relevance" else "Fresh judge",
            "kind": "llm_judge",
            "template": "answer_relevance",
            "sampling_rate": 0,
            "judge": {"base_url": judge.base_url, "model": "judge-1"},
        }
        assert httpx.post(f"{url}/v1/evaluators", json=spec, headers=headers).status_code == 201
    rng = np.random.default_rng(2)
    scores = rng.random(120)
    ups = rng.random(120) < 1 / (1 + np.exp(-8 * (scores - 0.5)))
    start = datetime.now(UTC) - timedelta(hours=2)
    calls = [
        {"event_id": f"ag-{i}", "model": "chat", "timestamp": (start + timedelta(seconds=i)).isoformat()}
        for i in range(120)
    ]
    feedback = [
        {"inference_id": f"ag-{i}", "kind": "score", "value": round(float(s), 3), "name": "relevance",
         "source": "evaluator", "timestamp": calls[i]["timestamp"]}
        for i, s in enumerate(scores)
    ] + [{"inference_id": f"ag-{i}", "kind": "thumbs", "value": bool(u)} for i, u in enumerate(ups)]  # fmt: skip
    assert httpx.post(f"{url}/v1/inferences", content=orjson.dumps(calls), headers=headers).status_code == 202
    assert httpx.post(f"{url}/v1/feedback", content=orjson.dumps(feedback), headers=headers).status_code == 202

    sign_in(browser, url, token)

    def shown() -> str:
        browser.get(f"{url}/ui/evaluators/relevance")
        found = browser.find_elements(By.ID, "agreement-n")
        return found[0].text if found else ""

    assert wait_until(lambda: shown() == "120", "120 calls compared on the page")
    value = browser.find_element(By.ID, "agreement-value").text
    assert "strong correlation (Cohen's sizes of a correlation" in value  # rho is a correlation, not a kappa
    assert "agreement" not in value
    assert browser.find_element(By.CSS_SELECTOR, "#agreement dl dt").text == "Spearman's rho"
    assert "Fisher z" in browser.find_element(By.ID, "agreement-interval").text
    estimate = browser.find_element(By.ID, "calibration-estimate").text
    assert "of the 120 judged calls (95 % interval" in estimate
    check_accessibility(browser, "evaluator agreement")
    screenshot(browser, "evaluator-agreement")

    browser.get(f"{url}/ui/evaluators/fresh")
    assert browser.find_element(By.ID, "agreement-none").text == "Not measurable yet: 0 calls with both."
    assert browser.find_element(By.ID, "calibration-none").text == (
        "No estimate: only 0 calls have both a judge score and a thumb; 30 needed."
    )
    assert console_problems(browser) == []


def test_edit_and_switch_off_and_on(browser: WebDriver, live: tuple[str, Runtime, str], judge: JudgeServer) -> None:  # noqa: F811
    """The edit form opens filled in with the stored evaluator and saves only what it shows (the judge's
    timeout, set through the API, stays); the list and the evaluator's page switch it off and on."""
    url, services, token = live
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    body = {
        "evaluator_id": "tone",
        "name": "Tone <b>check</b>",
        "kind": "llm_judge",
        "template": "toxicity",
        "sampling_rate": 0.25,
        "daily_budget_calls": 500,
        "judge": {"base_url": judge.base_url, "model": "judge-1", "timeout_seconds": 7},
    }
    assert httpx.post(f"{url}/v1/evaluators", json=body, headers=headers).status_code == 201

    sign_in(browser, url, token)
    browser.get(f"{url}/ui/evaluators/tone")
    browser.find_element(By.ID, "edit-link").click()
    wait(browser).until(lambda d: d.current_url.endswith("/ui/evaluators/tone/edit"))
    assert browser.find_element(By.ID, "e-name").get_attribute("value") == "Tone <b>check</b>"  # escaped, intact
    assert browser.find_element(By.ID, "e-rate").get_attribute("value") == "0.25"
    assert browser.find_element(By.ID, "e-calls").get_attribute("value") == "500"
    assert browser.find_element(By.ID, "e-model").get_attribute("value") == "judge-1"
    assert Select(browser.find_element(By.ID, "e-template")).first_selected_option.get_attribute("value") == "toxicity"
    assert browser.find_element(By.ID, "e-id").get_attribute("readonly") == "true"
    check_accessibility(browser, "edit evaluator")
    screenshot(browser, "evaluator-edit")

    rate = browser.find_element(By.ID, "e-rate")
    rate.clear()
    rate.send_keys("2")  # refused with the API's own message, the form keeps what was typed
    browser.find_element(By.CSS_SELECTOR, "#evaluator-form button[type='submit']").click()
    errors = wait(browser).until(lambda d: d.find_elements(By.ID, "evaluator-errors"))
    assert "sampling_rate" in errors[0].text
    assert "less than or equal to 1" in errors[0].text
    assert browser.find_element(By.ID, "e-rate").get_attribute("value") == "2"
    screenshot(browser, "evaluator-edit-refused")
    problems = console_problems(browser)  # the refused save's 422 response, and nothing else
    assert len(problems) == 1
    assert "/ui/evaluators/tone/edit" in problems[0]
    assert "422" in problems[0]

    rate = browser.find_element(By.ID, "e-rate")
    rate.clear()
    rate.send_keys("0.5")
    browser.find_element(By.ID, "e-calls").clear()  # empty: no limit
    Select(browser.find_element(By.ID, "e-template")).select_by_value("refusal")
    browser.find_element(By.CSS_SELECTOR, "#evaluator-form button[type='submit']").click()
    wait(browser).until(lambda d: d.current_url.endswith("/ui/evaluators/tone"))
    stored = httpx.get(f"{url}/v1/evaluators/tone", headers=headers).json()
    assert (stored["sampling_rate"], stored["daily_budget_calls"], stored["template"]) == (0.5, None, "refusal")
    assert stored["judge"]["timeout_seconds"] == 7  # not on the form: kept
    assert stored["name"] == "Tone <b>check</b>"

    browser.find_element(By.CSS_SELECTOR, "button[data-action='toggle']").click()  # on the evaluator's page
    wait(browser).until(lambda d: d.find_element(By.ID, "ev-state").text.startswith("disabled"))
    assert httpx.get(f"{url}/v1/evaluators/tone", headers=headers).json()["enabled"] is False
    screenshot(browser, "evaluator-disabled")

    browser.get(f"{url}/ui/evaluators")
    row = "tr[data-evaluator='tone']"
    assert browser.find_element(By.CSS_SELECTOR, f"{row} [data-state]").text == "disabled"
    browser.find_element(By.CSS_SELECTOR, f"{row} button[data-action='toggle']").click()  # on the list
    wait(browser).until(lambda d: d.find_element(By.CSS_SELECTOR, f"{row} [data-state]").text == "enabled")
    assert browser.current_url.endswith("/ui/evaluators")
    assert httpx.get(f"{url}/v1/evaluators/tone", headers=headers).json()["enabled"] is True
    check_accessibility(browser, "evaluators")
    screenshot(browser, "evaluators-switch")
    assert console_problems(browser) == []
    assert services.evaluations is not None


class TestSwitchRefusals:
    """The switch takes the session's CSRF token and a manage (admin) key: otherwise 403, nothing changes."""

    def test_forged_token_and_read_key_refused(self, live: tuple[str, Runtime, str]) -> None:
        url, services, token = live
        headers = {"authorization": f"Bearer {token}"}
        body = {"evaluator_id": "c", "name": "C", "kind": "code", "code": {"check": "json_valid"}}
        assert httpx.post(f"{url}/v1/evaluators", json=body, headers=headers).status_code == 201
        reader = services.keys.create(PROJECT, "reader", scope="read").token
        for key, csrf in ((token, "forged"), (reader, None)):
            with httpx.Client(base_url=url) as client:
                page = client.get("/ui/signin").text
                signed = {"csrf_token": csrf_of(page), "api_key": key, "next": "/ui"}
                assert client.post("/ui/signin", data=signed).status_code in (200, 303)
                csrf = csrf or csrf_of(client.get("/ui/evaluators").text)
                refused = client.post("/ui/evaluators/c/enabled", data={"csrf_token": csrf, "enabled": "false"})
                assert refused.status_code == 403, refused.text
        assert httpx.get(f"{url}/v1/evaluators/c", headers=headers).json()["enabled"] is True


def test_agreement_period_is_chosen_on_the_page(
    browser: WebDriver,  # noqa: F811
    live: tuple[str, Runtime, str],
    judge: JudgeServer,
) -> None:
    """Pairs 2 hours and 20 days old: the page opens on 7 days (the recent ones), the period selector
    reloads it on 30 days (both, kept in the address), the model selector on one model's calls (too few
    for its own fit: the pooled one, said so), and a period or model it does not offer is a precise 422."""
    url, _, token = live
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    spec = {
        "evaluator_id": "relevance",
        "name": "Answer <b>relevance</b>",
        "kind": "llm_judge",
        "template": "answer_relevance",
        "sampling_rate": 0,
        "judge": {"base_url": judge.base_url, "model": "judge-1"},
    }
    assert httpx.post(f"{url}/v1/evaluators", json=spec, headers=headers).status_code == 201
    rng = np.random.default_rng(4)
    now = datetime.now(UTC)
    calls, feedback = [], []
    for age, count, model in ((timedelta(hours=2), 40, "chat"), (timedelta(hours=3), 10, "mini"),
                              (timedelta(days=20), 50, "chat")):  # fmt: skip
        scores = rng.random(count)
        ups = rng.random(count) < 1 / (1 + np.exp(-8 * (scores - 0.5)))
        for i, (score, up) in enumerate(zip(scores, ups, strict=True)):
            at = (now - age + timedelta(seconds=i)).isoformat()
            call = f"{model}{age.days}-{i}"
            calls.append({"event_id": call, "model": model, "timestamp": at})
            feedback += [
                {"inference_id": call, "kind": "score", "value": round(float(score), 3), "name": "relevance",
                 "source": "evaluator", "timestamp": at},
                {"inference_id": call, "kind": "thumbs", "value": bool(up), "timestamp": at},
            ]  # fmt: skip
    assert httpx.post(f"{url}/v1/inferences", content=orjson.dumps(calls), headers=headers).status_code == 202
    assert httpx.post(f"{url}/v1/feedback", content=orjson.dumps(feedback), headers=headers).status_code == 202

    sign_in(browser, url, token)

    def compared(days: str = "") -> str:
        browser.get(f"{url}/ui/evaluators/relevance{'?days=' + days if days else ''}")
        found = browser.find_elements(By.ID, "agreement-n")
        return found[0].text if found else ""

    wait_until(lambda: compared("90") == "100", "every pair stored")
    assert compared() == "50"
    assert Select(browser.find_element(By.ID, "agreement-days")).first_selected_option.text == "last 7 days"
    assert "last 7 days" in browser.find_element(By.ID, "agreement-period-note").text
    Select(browser.find_element(By.ID, "agreement-days")).select_by_value("30")
    browser.find_element(By.CSS_SELECTOR, "#agreement-period button[type='submit']").click()
    wait(browser).until(lambda d: "days=30" in d.current_url)
    assert browser.find_element(By.ID, "agreement-n").text == "100"
    assert Select(browser.find_element(By.ID, "agreement-days")).first_selected_option.text == "last 30 days"
    assert "last 30 days" in browser.find_element(By.ID, "agreement-period-note").text
    assert "correlation" in browser.find_element(By.ID, "agreement-value").text
    assert browser.find_element(By.TAG_NAME, "h1").text == "Answer <b>relevance</b>"  # escaped, not markup
    check_accessibility(browser, "evaluator agreement period")
    screenshot(browser, "evaluator-agreement-30-days")
    assert console_problems(browser) == []

    Select(browser.find_element(By.ID, "agreement-model")).select_by_visible_text("mini")
    browser.find_element(By.CSS_SELECTOR, "#agreement-period button[type='submit']").click()
    wait(browser).until(lambda d: "model=mini" in d.current_url)
    assert browser.find_element(By.ID, "agreement-n").text == "10"
    assert "of model mini only" in browser.find_element(By.ID, "agreement-period-note").text
    fit = browser.find_element(By.ID, "calibration-fit").text
    assert "fitted on 100 calls with both, every model's: this model has only 10 (fewer than 30)" in fit
    assert "% of the 10 calls they rated" in browser.find_element(By.ID, "calibration-estimate").text
    screenshot(browser, "evaluator-agreement-one-model")

    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    for bad in ("14", "7d", "-7"):
        refused = httpx.get(f"{url}/ui/evaluators/relevance", params={"days": bad}, cookies=cookies)
        assert refused.status_code == 422, bad
        assert "days: one of 7, 30, 90 (days of agreement)" in refused.text, bad
    unknown = httpx.get(f"{url}/ui/evaluators/relevance", params={"model": "<b>nope</b>"}, cookies=cookies)
    assert unknown.status_code == 422
    assert "model: no calls of model &#39;&lt;b&gt;nope&lt;/b&gt;&#39; in this project" in unknown.text
