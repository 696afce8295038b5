"""The privacy family on the dashboard, in a real headless Chromium against a real uvicorn server: the
window page lists what redaction found per field and kind, the model page charts the share per field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from streams.runtime import Runtime
from tests.ui.conftest import WINDOW, _post, close_all, dashboard_settings
from tests.ui.test_browser import (
    browser,  # noqa: F401 - the module's Chromium
    charts_drawn,
    check_accessibility,
    console_problems,
    downloads,  # noqa: F401 - what the browser fixture needs
    screenshot,
    sign_in,
    wait,
)

PROJECT = "privacy"
START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """Three windows of a support bot; in the last one, 3 of 20 responses leak an e-mail address (one
    also a phone number) and the one correction sent has one too."""
    from loopwatch._server import BackgroundServer, free_port
    from loopwatch.process import serving_app

    server = BackgroundServer(serving_app(dashboard_settings(data_dir)), free_port()).start()
    services: Runtime = server.app.state.runtime
    token = services.keys.create(PROJECT, "ui").token
    calls = []
    for window in range(3):
        for i in range(20):
            leak = window == 2 and i < 3
            response = "Your parcel ships tomorrow."
            if leak:
                response = f"Ask ana.silva{i}@example.com" + (" or call +1 415 555 2671" if i == 0 else "")
            calls.append(
                {
                    "event_id": f"c-{window}-{i}",
                    "model": "support-bot",
                    "prompt": "Where is my parcel?",
                    "response": response,
                    "latency_ms": 120.0,
                    "timestamp": (START + timedelta(seconds=window * WINDOW + i / 4)).isoformat(),
                }
            )
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            _post(client, "/v1/inferences", token, calls)
            correction = {"inference_id": "c-2-5", "kind": "correction", "text": "Write to bo@example.org instead"}
            _post(client, "/v1/feedback", token, [correction])
        close_all(services)
        yield server.url, token
    finally:
        server.stop()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def test_window_page_lists_what_was_found(browser: WebDriver, server: tuple[str, str]) -> None:  # noqa: F811
    url, token = server
    sign_in(browser, url, token)
    leaky = (START + timedelta(seconds=2 * WINDOW)).isoformat()
    browser.get(f"{url}/ui/models/support-bot/windows/{quote(leaky)}")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "privacy")))
    rows = [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#privacy tbody tr")
    ]
    assert rows == [
        ["prompt", "all kinds", "0", "0%", "0", "20"],
        ["response", "all kinds", "3", "15%", "4", "20"],
        ["response", "EMAIL", "3", "15%", "3", "20"],
        ["response", "PHONE", "1", "5%", "1", "20"],
        ["correction", "all kinds", "1", "100%", "1", "1"],
        ["correction", "EMAIL", "1", "100%", "1", "1"],
    ]
    check_accessibility(browser, "window")
    screenshot(browser, "30-window-privacy")
    assert console_problems(browser) == []


def test_model_page_charts_the_share_per_field(browser: WebDriver, server: tuple[str, str]) -> None:  # noqa: F811
    url, token = server
    sign_in(browser, url, token)
    browser.get(f"{url}/ui/models/support-bot")
    assert charts_drawn(browser) >= 1
    wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#chart-privacy .main-svg")))
    legend = {item.text for item in browser.find_elements(By.CSS_SELECTOR, "#chart-privacy .legendtext")}
    assert legend == {"prompt", "response", "correction"}
    screenshot(browser, "31-model-privacy")
    assert console_problems(browser) == []
