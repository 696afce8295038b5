"""``/docs`` in a real headless Chromium against a real uvicorn server, with no network: Swagger UI
renders from the files this server serves (the installed ``swagger-ui-bundle-v2``), under the strict
Content-Security-Policy (a violation in the console fails the test). Saves a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from tests.conftest import make_settings
from tests.ui.test_browser import browser, console_problems, downloads, screenshot, wait

__all__ = ["browser", "downloads"]  # the module-scoped Chromium fixtures, shared with the dashboard tests


@pytest.fixture(scope="module")
def docs_url(data_dir: Path) -> Iterator[str]:
    server = BackgroundServer(serving_app(make_settings(data_dir)), free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_swagger_ui_renders_offline_under_the_strict_policy(browser: WebDriver, docs_url: str) -> None:
    browser.get(f"{docs_url}/docs")
    title = wait(browser).until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".info .title")))
    assert title.text.startswith("loopwatch")
    operation = wait(browser).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, ".opblock-post .opblock-summary"))
    )
    paths = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/v1/inferences" in paths
    assert "/v1/stats/{family}" in paths
    operation.click()  # an operation opens with its parameters and responses
    wait(browser).until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".opblock-body")))
    screenshot(browser, "docs")
    assert console_problems(browser) == []
