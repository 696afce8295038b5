"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
against a real uvicorn server holding demo-like traffic with a drift.

Each scenario saves a screenshot under ``tests/artifacts/ui/`` (ignored by git). The browser's console
is read after every page: a Content-Security-Policy violation (a blocked script or style) fails the
test, so the strict policy is checked against what Plotly really does, not what we hope it does.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from schemas.monitors import MonitorCreate
from streams.runtime import Runtime
from streams.storage import alerts as alert_rows
from tests.ui.conftest import HOSTILE_MODEL, Seeded
from tests.waiting import wait_until

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
WAIT = 30  # seconds: only to detect a hang


def require_browser(paths: Iterable[Path] = (CHROMIUM, CHROMEDRIVER), env: Mapping[str, str] = os.environ) -> None:
    """Skip a browser test where the browser is missing, on a workstation; in CI (``CI=true``) fail
    instead: a CI run must never pass by skipping its browser tests (the Kafka tests never skip either)."""
    missing = [str(path) for path in paths if not path.exists()]
    if not missing:
        return
    message = f"needs {' and '.join(missing)}: run scripts/browser (scripts/test does)"
    if env.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_page_load_timeout(WAIT * 2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver) -> WebDriverWait:  # type: ignore[type-arg]
    return WebDriverWait(driver, WAIT)


def screenshot(driver: WebDriver, name: str) -> Path:
    """A full-page screenshot (the window grown to the page's height), saved as a test artifact."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(int(height), 800), 6000))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    print(f"screenshot: {path}")
    return path


def console_problems(driver: WebDriver) -> list[str]:
    """Console errors since the last call: script errors, CSP violations, failed loads. None is allowed."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def no_dialog(driver: WebDriver) -> None:
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"a script from the data ran: alert({text!r})")


def charts_drawn(driver: WebDriver) -> int:
    """Wait until Plotly drew every chart the page has data for; returns how many."""
    blocks = driver.find_elements(By.CSS_SELECTOR, "script[type='application/json'][data-chart]")
    expected = [b.get_attribute("id").removesuffix("-data") for b in blocks]

    def done(d: WebDriver) -> bool:
        return all(
            d.find_element(By.ID, chart).get_attribute("data-rendered") == "true"
            or "empty" in (d.find_element(By.ID, chart).get_attribute("class") or "")
            for chart in expected
        )

    wait(driver).until(done)
    return len(expected)


def sign_in(driver: WebDriver, url: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/ui")
    wait(driver).until(expected_conditions.url_contains("/ui/signin"))
    driver.find_element(By.ID, "api_key").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/signin'] button[type='submit']").click()
    wait(driver).until(lambda d: d.current_url.rstrip("/").endswith("/ui"))


# ---------------------------------------------------------------- accessibility helpers


def unlabelled_controls(driver: WebDriver) -> list[str]:
    """Visible inputs, selects and textareas with no <label for>, no wrapping label and no aria-label."""
    return driver.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll('input, select, textarea')) {
          if (el.type === 'hidden') continue;
          const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
          if (!byFor && !el.closest('label') && !el.getAttribute('aria-label')) out.push(el.outerHTML.slice(0, 80));
        }
        return out;
    """)


def heading_problems(driver: WebDriver) -> list[str]:
    levels = [int(h.tag_name[1]) for h in driver.find_elements(By.CSS_SELECTOR, "h1, h2, h3, h4, h5, h6")]
    problems = [] if levels.count(1) == 1 else [f"{levels.count(1)} h1 elements"]
    problems += [f"h{a} followed by h{b}" for a, b in itertools.pairwise(levels) if b > a + 1]
    return problems


def _luminance(rgb: tuple[float, ...]) -> float:
    channels = [c / 255 for c in rgb[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """The WCAG 2 contrast ratio of two CSS rgb()/rgba() colours as the browser computed them."""
    first, second = (tuple(float(v) for v in re.findall(r"[\d.]+", c)) for c in (foreground, background))
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def check_accessibility(driver: WebDriver, page: str) -> None:
    assert unlabelled_controls(driver) == [], page
    assert heading_problems(driver) == [], page
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


# ---------------------------------------------------------------- scenarios


class TestDashboardInChromium:
    """Sign in, see the drift, drill down, ack, filter and export feedback, be told a monitor is wrong."""

    def test_sign_in_and_see_the_drifted_model(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        row = browser.find_element(By.CSS_SELECTOR, "tr[data-model='gpt-4o-mini']")
        assert row.get_attribute("data-health") in ("critical", "warning")
        assert "drifted" in row.find_element(By.CSS_SELECTOR, ".drift-flag").text
        assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline")
        check_accessibility(browser, "overview")
        # the health colours as the browser computes them from our stylesheet: badges (white on colour)
        # and coloured text on the white table, each at least WCAG AA (4.5:1)
        for severity in ("critical", "warning", "ok", "info"):
            colours = browser.execute_script(
                """
                const out = [];
                for (const cls of ['badge ' + arguments[0], 'health-text ' + arguments[0]]) {
                  const el = document.createElement('span');
                  el.className = cls; el.textContent = 'x';
                  document.querySelector('main').appendChild(el);
                  const style = getComputedStyle(el);
                  out.push([style.color, style.backgroundColor]);
                  el.remove();
                }
                return out;
            """,
                severity,
            )
            badge, text = colours
            assert contrast(badge[0], badge[1]) >= 4.5, (severity, badge)
            assert contrast(text[0], "rgb(255, 255, 255)") >= 4.5, (severity, text)
        screenshot(browser, "01-overview")
        assert console_problems(browser) == []

    def test_model_page_draws_its_charts_under_the_csp(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.find_element(By.LINK_TEXT, "gpt-4o-mini").click()
        assert charts_drawn(browser) >= 7
        assert browser.find_elements(By.CSS_SELECTOR, "#chart-latency .main-svg")  # Plotly's own SVG
        check_accessibility(browser, "model")
        screenshot(browser, "02-model")
        assert console_problems(browser) == []  # no CSP violation, no script error
        Select(browser.find_element(By.ID, "interval")).select_by_value("60")
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type='submit']").click()
        wait(browser).until(expected_conditions.url_contains("interval=60"))
        assert charts_drawn(browser) >= 7
        assert console_problems(browser) == []

    def test_window_drill_down(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        row = browser.find_element(By.CSS_SELECTOR, "tr[data-model='gpt-4o-mini']")
        row.find_element(By.LINK_TEXT, "latest window").click()
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "column-drift")))
        assert browser.find_elements(By.CSS_SELECTOR, "#column-drift tr.flagged")
        assert charts_drawn(browser) >= 1
        check_accessibility(browser, "window")
        screenshot(browser, "03-window")
        assert console_problems(browser) == []
        browser.find_element(By.PARTIAL_LINK_TEXT, "Evidently report").click()
        wait(browser).until(lambda d: "loopwatch drift" in d.title)

    def test_ack_an_alert(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/alerts?status=open&model=gpt-4o-mini")
        check_accessibility(browser, "alerts")
        screenshot(browser, "04-alerts")
        browser.find_element(By.CSS_SELECTOR, "tr.alert-row td a").click()
        browser.find_element(By.ID, "ack-note").send_keys("looking into the prompt change")
        browser.find_element(By.CSS_SELECTOR, "form[action$='/ack'] button").click()
        wait(browser).until(expected_conditions.text_to_be_present_in_element((By.ID, "alert-status"), "acked"))
        assert "looking into the prompt change" in browser.find_element(By.TAG_NAME, "main").text
        check_accessibility(browser, "alert")
        screenshot(browser, "05-alert-acked")
        assert console_problems(browser) == []

    def test_filter_feedback_and_download_an_export(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded], downloads: Path
    ) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/feedback")
        kinds = Select(browser.find_element(By.ID, "fb-kind"))
        kinds.select_by_value("correction")
        browser.find_element(By.ID, "fb-model").send_keys("gpt-4o-mini")
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type='submit']").click()
        wait(browser).until(expected_conditions.url_contains("kind=correction"))
        items = browser.find_elements(By.CSS_SELECTOR, "article.feedback-item")
        assert items
        assert {item.get_attribute("data-kind") for item in items} == {"correction"}
        check_accessibility(browser, "feedback")
        screenshot(browser, "06-feedback")
        for leftover in downloads.iterdir():
            leftover.unlink()
        browser.find_element(By.LINK_TEXT, "CSV").click()
        files = wait_until(
            lambda: [f for f in downloads.iterdir() if f.suffix == ".csv"], "the CSV export's download", timeout=WAIT
        )
        lines = files[0].read_text().splitlines()
        assert lines[0].startswith("feedback_id,inference_id,timestamp,kind")
        assert len(lines) - 1 == len(items) or len(lines) > len(items)
        assert all(",correction," in line for line in lines[1:] if line.startswith("fb-"))
        assert console_problems(browser) == []

    def test_invalid_monitor_condition_is_explained(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/monitors")
        screenshot(browser, "07-monitors")
        browser.find_element(By.LINK_TEXT, "New monitor").click()
        browser.find_element(By.ID, "m-name").send_keys("p95 significance")
        metric = browser.find_element(By.ID, "m-metric")
        metric.clear()
        metric.send_keys("latency_p95_ms")
        Select(browser.find_element(By.ID, "m-ctype")).select_by_value("p_value")
        browser.find_element(By.CSS_SELECTOR, "form.card button[type='submit']").click()
        errors = wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "monitor-errors")))
        assert "metric 'latency_p95_ms' carries no p-value; use a 'threshold' condition" in errors.text
        assert browser.find_element(By.ID, "m-name").get_attribute("value") == "p95 significance"  # kept
        check_accessibility(browser, "monitor form")
        screenshot(browser, "08-monitor-invalid")
        # the refused form answers 422, which the console lists as a failed load: expected, nothing else
        assert [p for p in console_problems(browser) if "422 (Unprocessable" not in p] == []

    def test_monitor_form_shows_what_the_choice_uses(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        """With ui.js, only the chosen condition's and channel's fields show (without it, all do)."""
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/monitors/new")
        shown = lambda element_id: browser.find_element(By.ID, element_id).is_displayed()  # noqa: E731
        assert shown("m-value")
        assert not shown("m-alpha")
        Select(browser.find_element(By.ID, "m-ctype")).select_by_value("p_value")
        assert shown("m-alpha")
        assert not shown("m-value")
        Select(browser.find_element(By.ID, "m-ctype")).select_by_value("flagged")
        assert not shown("m-alpha")
        assert not shown("m-op")
        assert not shown("c1-url")
        Select(browser.find_element(By.ID, "c1-type")).select_by_value("slack")
        assert shown("c1-url")
        assert not shown("c1-secret")
        Select(browser.find_element(By.ID, "c1-type")).select_by_value("webhook")
        assert shown("c1-secret")
        assert shown("c1-headers")
        scope = Select(browser.find_element(By.ID, "m-scope"))
        assert [o.get_attribute("value") for o in scope.options][:2] == ["*", "claude-3-5-haiku-latest"]
        box, label = (
            browser.find_element(By.ID, "m-enabled"),
            browser.find_element(By.CSS_SELECTOR, "label[for='m-enabled']"),
        )
        assert (
            abs(box.rect["y"] + box.rect["height"] / 2 - (label.rect["y"] + label.rect["height"] / 2)) < 4
        )  # one line
        check_accessibility(browser, "monitor form")
        screenshot(browser, "10-monitor-form-webhook")
        assert console_problems(browser) == []
        Select(browser.find_element(By.ID, "c1-type")).select_by_value("pagerduty")
        assert shown("c1-key")
        assert shown("c1-url")
        assert not shown("c1-secret")
        Select(browser.find_element(By.ID, "c1-type")).select_by_value("email")
        assert shown("c1-to")
        assert shown("c1-digest")
        assert not shown("c1-url")
        assert not shown("c1-key")
        check_accessibility(browser, "monitor form, email channel")
        screenshot(browser, "10-monitor-form-email")

    def test_create_a_no_data_monitor_per_route(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        """The form takes a no-data condition, a tag to group by and a rolling window (CSP kept)."""
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/monitors/new")
        shown = lambda element_id: browser.find_element(By.ID, element_id).is_displayed()  # noqa: E731
        browser.find_element(By.ID, "m-id").send_keys("route-silent")
        browser.find_element(By.ID, "m-name").send_keys("A route went silent")
        metric = browser.find_element(By.ID, "m-metric")
        metric.clear()
        metric.send_keys("count")
        assert not shown("m-for")
        Select(browser.find_element(By.ID, "m-ctype")).select_by_value("no_data")
        assert shown("m-for")
        assert shown("m-share")
        assert not shown("m-value")
        browser.find_element(By.ID, "m-for").send_keys("7d")
        browser.find_element(By.ID, "m-group").send_keys("route")
        check_accessibility(browser, "monitor form")
        screenshot(browser, "16-monitor-form-no-data")
        browser.find_element(By.CSS_SELECTOR, "form.card button[type='submit']").click()
        row = wait(browser).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "tr[data-monitor='route-silent']"))
        )
        assert "no events for 7d" in row.text
        assert "per route" in row.text
        screenshot(browser, "17-monitors-no-data")
        assert console_problems(browser) == []

    def test_a_no_data_alert_page(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        """A model that went quiet: its alert says so and that it fires until events return."""
        url, services, _ = live_server
        storage = services.storage
        last = datetime.now(UTC) - timedelta(hours=2)
        storage.insert_rows(
            "inferences",
            ["project", "event_id", "model", "timestamp", "status"],
            [["quiet", "q-1", "ranker", last, "ok"]],
        )
        spec = {
            "monitor_id": "ranker-silent",
            "name": "Ranker silent",
            "scope": "ranker",
            "family": "latency",
            "metric": "count",
            "condition": {"type": "no_data", "for": "30m"},
        }
        services.monitoring.store.create("quiet", MonitorCreate.model_validate(spec))
        services.monitoring.check_silences()  # what the service's timer calls
        fired = alert_rows.firing(services.monitoring.alerts.storage, "quiet", monitor_id="ranker-silent")
        sign_in(browser, url, services.keys.create("quiet", "ui").token)
        browser.get(f"{url}/ui/alerts/{quote(fired[0].alert_id)}")
        assert browser.find_element(By.ID, "alert-summary").text.startswith("no events from ranker for 30m")
        assert "until events arrive again" in browser.find_element(By.CSS_SELECTOR, "p.state").text
        assert browser.find_elements(By.ID, "window-link") == []  # a silence is no window to open
        check_accessibility(browser, "no-data alert")
        screenshot(browser, "18-alert-no-data")
        assert console_problems(browser) == []

    def test_timely_project_with_future_events(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        """Traffic up to now with a gap, events stamped ahead, an unpriced model, a too-small window."""
        url, _, seeded = live_server
        sign_in(browser, url, seeded.timely_token)
        assert "unpriced" in browser.find_element(By.CSS_SELECTOR, "tr[data-model='private-llm-v7']").text
        assert "not evaluated" in browser.find_element(By.CSS_SELECTOR, "tr[data-model='slowpoke']").text
        screenshot(browser, "11-overview-timely")
        assert console_problems(browser) == []
        browser.find_element(By.LINK_TEXT, "gpt-4o-mini").click()
        assert charts_drawn(browser) >= 3
        assert "start after now" in browser.find_element(By.ID, "ahead-note").text
        screenshot(browser, "12-model-gap-and-future")

    def test_errors_of_one_type_then_a_call(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/models/gpt-4o-mini")
        charts_drawn(browser)
        assert console_problems(browser) == []  # read here: the blocked map CSS is told apart on its own page
        card = browser.find_element(By.ID, "error-types")
        card.find_element(By.LINK_TEXT, "timeout").click()
        wait(browser).until(expected_conditions.url_contains("error_type=timeout"))
        assert "status=error" in browser.current_url
        rows = browser.find_elements(By.CSS_SELECTOR, "#calls tbody tr")
        assert rows
        assert all(row.find_element(By.CSS_SELECTOR, ".error-type").text == "timeout" for row in rows)
        assert browser.find_element(By.ID, "c-error-type").get_attribute("value") == "timeout"  # the form shows it
        check_accessibility(browser, "calls")
        screenshot(browser, "13-calls-timeouts")
        assert console_problems(browser) == []
        event_id = rows[0].get_attribute("data-event-id")
        rows[0].find_element(By.CSS_SELECTOR, "td a").click()
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "prompt")))
        assert event_id in browser.find_element(By.TAG_NAME, "h1").text
        assert "timeout" in browser.find_element(By.ID, "call-numbers").text
        check_accessibility(browser, "call")
        screenshot(browser, "14-call")
        assert console_problems(browser) == []

    def test_window_examples_lead_to_their_call(
        self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]
    ) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/models/gpt-4o-mini/windows/2026-06-01T12%3A00%3A20%2B00%3A00")
        charts_drawn(browser)
        family = browser.find_element(By.CSS_SELECTOR, ".family-examples[data-family='prompt']")
        extreme = family.find_element(By.CSS_SELECTOR, ".extremes .call-card")
        event_id = extreme.get_attribute("data-event-id")
        browser.execute_script("arguments[0].scrollIntoView()", family)
        check_accessibility(browser, "window examples")
        screenshot(browser, "15-window-examples")
        assert console_problems(browser) == []
        extreme.find_element(By.TAG_NAME, "a").click()
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "prompt")))
        assert event_id in browser.find_element(By.TAG_NAME, "h1").text
        assert browser.find_element(By.ID, "prompt").text  # the drifted prompt, in full
        assert console_problems(browser) == []

    def test_feedback_item_opens_its_call(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.token)
        browser.get(f"{url}/ui/feedback?kind=correction")
        item = browser.find_element(By.CSS_SELECTOR, "article.feedback-item")
        item.find_element(By.LINK_TEXT, "the call").click()
        rows = wait(browser).until(
            expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, "#feedback tr[data-kind]"))
        )
        assert "correction" in {row.get_attribute("data-kind") for row in rows}
        assert console_problems(browser) == []

    def test_hostile_names_do_not_run(self, browser: WebDriver, live_server: tuple[str, Runtime, Seeded]) -> None:
        url, _, seeded = live_server
        sign_in(browser, url, seeded.hostile_token)
        no_dialog(browser)
        assert HOSTILE_MODEL in browser.find_element(By.TAG_NAME, "main").text  # shown as text
        model = quote(HOSTILE_MODEL, safe="")
        for path in (
            f"/ui/models/{model}",
            f"/ui/models/{model}/windows/2026-06-01T12%3A00%3A10%2B00%3A00",
            "/ui/feedback",
            "/ui/alerts",
            "/ui/calls?status=error",
            "/ui/calls/h0-0",
        ):
            browser.get(url + path)
            charts_drawn(browser)
            no_dialog(browser)
            assert browser.execute_script("return document.querySelectorAll('img[src=x], svg[onload]').length") == 0
            assert console_problems(browser) == [], path
            if "windows" in path:
                screenshot(browser, "09-hostile-window")


def test_artifacts_are_ignored_by_git() -> None:
    gitignore = Path(__file__).resolve().parents[2] / ".gitignore"
    assert "tests/artifacts/" in gitignore.read_text().splitlines()
    assert shutil.which("git") is None or ARTIFACTS.is_relative_to(gitignore.parent / "tests" / "artifacts")


class TestRequireBrowser:
    """Without chromium or its driver the browser tests skip on a workstation and fail in CI."""

    def test_skips_outside_ci_and_fails_in_ci(self, tmp_path: Path) -> None:
        absent = [tmp_path / "chromium", CHROMEDRIVER]
        with pytest.raises(pytest.skip.Exception, match="needs .*chromium"):
            require_browser(absent, env={})
        with pytest.raises(pytest.fail.Exception, match="CI=true, so this is a failure"):
            require_browser(absent, env={"CI": "true"})
        present = tmp_path / "present"
        present.touch()
        require_browser([present], env={"CI": "true"})  # nothing missing: neither
