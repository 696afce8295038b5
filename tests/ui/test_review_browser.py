"""Two reviewers in two real headless Chromium windows review one queue with the keyboard only, against a
real uvicorn server: neither gets an item the other holds, and their reviews arrive as feedback and in
a dataset download. Screenshots of the review, queue and datasets pages go to ``tests/artifacts/ui/``;
any console error (a CSP violation, a script error) fails the test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from streams.runtime import Runtime
from tests.ui.conftest import dashboard_settings
from tests.ui.test_browser import (
    ARTIFACTS,
    CHROMEDRIVER,
    CHROMIUM,
    console_problems,
    require_browser,
    screenshot,
    wait,
)
from tests.waiting import wait_until

PROJECT = "reviews"
FIELDS = [
    {"name": "verdict", "type": "labels", "labels": ["good", "bad"]},
    {"name": "fix", "type": "correction", "required": False},
]


def chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[tuple[str, Runtime, str]]:
    from loopwatch._server import BackgroundServer, free_port
    from loopwatch.process import serving_app

    server = BackgroundServer(serving_app(dashboard_settings(data_dir)), free_port()).start()
    services: Runtime = server.app.state.runtime
    token = services.keys.create(PROJECT, "lead").token
    headers = {"authorization": f"Bearer {token}"}
    calls = [
        {
            "event_id": f"call-{i}",
            "model": "chat",
            "prompt": f"Question {i} <b>bold?</b>",
            "response": f"Answer {i}",
            "tags": {"route": "/help"},
            "timestamp": f"2026-11-02T10:0{i}:00Z",
        }
        for i in range(4)
    ]
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            assert client.post("/v1/inferences", json=calls).status_code == 202
            made = client.post(
                "/v1/queues", json={"queue_id": "triage", "name": "Support triage", "rules": [{}], "fields": FIELDS}
            )
            assert made.status_code == 201 and made.json()["progress"]["items"] == 4
        yield server.url, services, token
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


@pytest.fixture(scope="module")
def reviewers() -> Iterator[tuple[WebDriver, WebDriver]]:
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    first = chromium()
    try:
        second = chromium()
        try:
            yield first, second
        finally:
            second.quit()
    finally:
        first.quit()


def sign_in(driver: WebDriver, url: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/ui/queues/triage/review")
    wait(driver).until(expected_conditions.url_contains("/ui/signin"))
    driver.find_element(By.ID, "api_key").send_keys(token, Keys.ENTER)  # the keyboard, as everywhere here
    wait(driver).until(expected_conditions.url_contains("/ui/queues/triage/review"))


def item_of(driver: WebDriver) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, "[data-item]").get_attribute("data-item"))


def keys(driver: WebDriver, *sequence: str) -> None:
    ActionChains(driver).send_keys(*sequence).perform()


def next_page(driver: WebDriver, before: str) -> str:
    """Wait for the page after a submit (a new item, or the end of the queue); returns its item or ''."""

    def moved(d: WebDriver) -> str | bool:
        if d.find_elements(By.ID, "queue-done"):
            return "done"
        items = d.find_elements(By.CSS_SELECTOR, "[data-item]")
        return (
            bool(items) and items[0].get_attribute("data-item") != before and str(items[0].get_attribute("data-item"))
        )

    found = wait(driver).until(moved)
    return "" if found == "done" else str(found)


def test_two_reviewers_review_with_the_keyboard_only(
    server: tuple[str, Runtime, str], reviewers: tuple[WebDriver, WebDriver]
) -> None:
    url, services, token = server
    ana, ben = reviewers
    sign_in(ana, url, services.keys.create(PROJECT, "ana", "review").token)
    sign_in(ben, url, services.keys.create(PROJECT, "ben", "review").token)
    held = {"ana": item_of(ana), "ben": item_of(ben)}
    assert held["ana"] != held["ben"]  # each holds their own
    assert "Question" in ana.find_element(By.ID, "prompt").text  # the call's text, escaped
    screenshot(ana, "review-page")

    # ana: "2" = bad, Tab into the correction, type it, Ctrl+Enter submits; the next item comes
    keys(ana, "2", Keys.TAB, "The right answer is 42.")
    ActionChains(ana).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    ana_second = next_page(ana, held["ana"])
    assert ana_second and ana_second != held["ben"]
    # ben: "1" = good, Enter submits
    keys(ben, "1", Keys.ENTER)
    ben_second = next_page(ben, held["ben"])
    assert ben_second and ben_second != ana_second
    # ana skips with S, then takes it back with U and reviews it: good
    keys(ana, "s")
    after_skip = next_page(ana, ana_second)
    assert after_skip not in (ana_second, ben_second)
    keys(ana, "u")
    wait(ana).until(lambda d: item_of(d) == ana_second)
    keys(ana, "1", Keys.ENTER)
    next_page(ana, ana_second)
    assert not console_problems(ana) and not console_problems(ben)

    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:

        def annotations() -> list[dict[str, Any]]:
            items = client.get("/v1/feedback", params={"source": "annotator"}).json()["items"]
            return items if len(items) == 4 else []  # noqa: PLR2004 - ana: label + correction, label; ben: label

        got = wait_until(annotations, "the reviews as feedback")
        assert sorted((f["user_id"], f["inference_id"], f["kind"], f["value"] or f["text"]) for f in got) == sorted(
            [
                ("ana", held["ana"], "label", "bad"),
                ("ana", held["ana"], "correction", "The right answer is 42."),
                ("ana", ana_second, "label", "good"),
                ("ben", held["ben"], "label", "good"),
            ]
        )
        made = client.post("/v1/datasets", json={"name": "triaged", "format": "jsonl", "queue_id": "triage"})
        assert made.status_code == 201, made.text
        lines = [orjson.loads(line) for line in client.get(made.json()["download_url"]).content.splitlines()]
        assert sorted((line["user_id"], line["kind"]) for line in lines) == [
            ("ana", "correction"),
            ("ana", "label"),
            ("ana", "label"),
            ("ben", "label"),
        ]

    ana.get(f"{url}/ui/queues/triage")
    rows = {r.get_attribute("data-reviewer") for r in ana.find_elements(By.CSS_SELECTOR, "#reviews tr[data-reviewer]")}
    assert rows == {"ana", "ben"}  # who reviewed what
    assert ana.find_element(By.ID, "done").text.startswith("3")
    screenshot(ana, "queue-page")
    assert not console_problems(ana)
    ana.get(f"{url}/ui/datasets")  # a reviewer's key does not read datasets
    assert "its pages are the review queues" in ana.page_source
    assert [m for m in console_problems(ana) if "403" not in m] == []

    # the lead (a full key) sees the dataset of the reviews, and downloads it from the dashboard
    ben.delete_all_cookies()
    ben.get(f"{url}/ui/datasets")
    ben.find_element(By.ID, "api_key").send_keys(token, Keys.ENTER)
    wait(ben).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "tr[data-dataset='triaged']")))
    screenshot(ben, "datasets-page")
    link = ben.find_element(By.CSS_SELECTOR, "tr[data-dataset='triaged'] a.download").get_attribute("href")
    cookie = {c["name"]: c["value"] for c in ben.get_cookies()}
    downloaded = httpx.get(str(link), cookies=cookie, timeout=60)
    assert hashlib.sha256(downloaded.content).hexdigest() == made.json()["sha256"]
    ben.find_element(By.CSS_SELECTOR, "tr[data-dataset='triaged'] th a").click()
    wait(ben).until(expected_conditions.url_contains("/ui/datasets/triaged/1"))
    screenshot(ben, "dataset-version-page")
    assert not console_problems(ben)
