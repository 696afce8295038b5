"""From an alert to its cause, in a real headless Chromium: the links a Slack message and a webhook
payload carry open the dashboard (signed out: sign in, then back to the alert), the alert page says
what breached, and it leads to the drifted window. The sign-in's ``next`` only goes to /ui pages.

The server delivers to real loopback receivers (Slack's incoming webhook and a signed webhook), so the
links followed are the ones a person receives.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from api.ui.auth import safe_next
from loopwatch.demo.receiver import WebhookReceiver
from streams.delivery.wording import family_words
from streams.runtime import Runtime
from tests.delivery.delivery_receiver import Receiver
from tests.metrics_text import wait_until
from tests.ui import test_browser
from tests.ui.conftest import ADMIN_KEY, HOSTILE_PROJECT, PROJECT, csrf_of, dashboard_settings, seed
from tests.ui.test_browser import charts_drawn, check_accessibility, console_problems, screenshot, wait

SECRET = "whsec-links-0123456789"  # noqa: S105 - a test signing secret
browser = test_browser.browser  # the same headless Chromium fixture
downloads = test_browser.downloads


@dataclass
class Alerting:
    url: str
    services: Runtime
    token: str
    slack: Receiver
    hook: WebhookReceiver
    pagerduty: Receiver


@pytest.fixture(scope="module")
def alerting(data_dir: Path) -> Iterator[Alerting]:
    """A server whose drift monitor delivers to a Slack receiver and a webhook receiver on loopback,
    holding demo-like traffic with a drift; every window closed and both payloads received."""
    from loopwatch._server import BackgroundServer, free_port
    from loopwatch.process import serving_app

    port = free_port()
    settings = dashboard_settings(
        data_dir, allow_private_webhooks=True, public_url=f"http://127.0.0.1:{port}", delivery_backoff_seconds=0.05
    )
    slack, hook, pagerduty = Receiver(), WebhookReceiver(SECRET), Receiver()
    slack.start()
    hook.start()
    pagerduty.start()
    environment = pytest.MonkeyPatch()
    environment.setenv("PD_LINKS_KEY", "links-routing-key-0123456789")
    server = BackgroundServer(serving_app(settings), port).start()
    services: Runtime = server.app.state.runtime
    try:
        token = services.keys.create(PROJECT, "links").token
        monitor = {
            "monitor_id": "support-drift",
            "name": "Support bot drift",
            "scope": "gpt-4o-mini",
            "family": "drift",
            "metric": "family_drift",
            "condition": {"type": "flagged"},
            "severity": "critical",
            "cooldown_seconds": 3600,
            "channels": [
                {"type": "slack", "webhook_url": f"http://127.0.0.1:{slack.port}/services/T0/B0/X"},
                {"type": "webhook", "url": hook.url, "secret": SECRET},
                {"type": "pagerduty", "routing_key_env": "PD_LINKS_KEY", "url": pagerduty.url},
            ],
        }
        with httpx.Client(base_url=server.url, timeout=60) as client:
            created = client.post("/v1/monitors", json=monitor, headers={"authorization": f"Bearer {token}"})
            assert created.status_code == 201, created.text
            seed(client, services)
        wait_until(
            lambda: bool(slack.requests) and bool(hook.requests) and bool(pagerduty.requests),
            "the alert at the three receivers",
        )
        yield Alerting(server.url, services, token, slack, hook, pagerduty)
    finally:
        server.stop()
        slack.stop()
        hook.stop()
        pagerduty.stop()
        environment.undo()
        services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def _slack_buttons(alerting: Alerting) -> dict[str, str]:
    payload = json.loads(alerting.slack.requests[0].body)
    actions = [block for block in payload["blocks"] if block["type"] == "actions"]
    return {element["text"]["text"]: element["url"] for element in actions[0]["elements"]}


def _signed_out_open(driver: WebDriver, url: str) -> None:
    driver.get(url.split("/ui/")[0] + "/ui/signin")  # a page of the origin, so its cookies can be cleared
    driver.delete_all_cookies()
    driver.get(url)


def _sign_in_here(driver: WebDriver, token: str) -> None:
    wait(driver).until(expected_conditions.url_contains("/ui/signin"))
    driver.find_element(By.ID, "api_key").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/signin'] button[type='submit']").click()


class TestAlertLinksInChromium:
    """Signed out → sign in → the alert; from the alert to the drifted window."""

    def test_slack_button_signs_in_and_lands_on_the_alert(self, browser: WebDriver, alerting: Alerting) -> None:
        buttons = _slack_buttons(alerting)
        assert set(buttons) == {"Open alert", "Open window"}
        assert all(not urlsplit(url).path.startswith("/v1/") for url in buttons.values())
        alert_path = urlsplit(buttons["Open alert"]).path
        _signed_out_open(browser, buttons["Open alert"])
        assert "/ui/signin?next=" in browser.current_url
        _sign_in_here(browser, alerting.token)
        wait(browser).until(lambda d: urlsplit(d.current_url).path == alert_path)
        summary = browser.find_element(By.ID, "alert-summary").text
        assert "family drifted:" in summary
        assert " of " in summary
        assert "columns" in summary
        assert browser.find_element(By.ID, "alert-state").text == "firing"
        assert browser.find_elements(By.CSS_SELECTOR, "#alert-columns tr.flagged")
        channels = browser.find_element(By.ID, "alert-attempts").text
        assert "Slack #1" in channels
        assert "Webhook #2" in channels
        assert "PagerDuty #3" in channels
        assert charts_drawn(browser) == 1
        check_accessibility(browser, "alert")
        screenshot(browser, "10-alert-from-slack")
        assert console_problems(browser) == []
        calls = browser.find_element(By.ID, "calls-link").get_attribute("href") or ""
        assert urlsplit(calls).path == "/ui/calls"
        assert "model=gpt-4o-mini" in calls

        browser.find_element(By.ID, "window-link").click()
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "column-drift")))
        assert urlsplit(browser.current_url).path == urlsplit(buttons["Open window"]).path
        flagged = browser.find_elements(By.CSS_SELECTOR, "#column-drift tr.flagged")
        assert flagged
        effect = flagged[0].find_elements(By.TAG_NAME, "td")[5].text  # the effect size column
        assert float(effect) >= 0.1
        check_accessibility(browser, "window")
        screenshot(browser, "11-window-from-alert")
        assert console_problems(browser) == []

    def test_webhook_links_sign_in_and_land_on_their_pages(self, browser: WebDriver, alerting: Alerting) -> None:
        body = alerting.hook.requests[0].json
        assert alerting.hook.requests[0].verified
        assert urlsplit(body["api_url"]).path == f"/v1/alerts/{body['alert_id']}"  # for machines
        assert "/v1/reports/drift" in body["stats_api_url"]
        assert body["summary"] == json.loads(alerting.slack.requests[0].body)["blocks"][1]["text"]["text"].strip("*")
        _signed_out_open(browser, body["window_url"])
        _sign_in_here(browser, alerting.token)
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "column-drift")))
        assert urlsplit(browser.current_url).path == urlsplit(body["window_url"]).path
        _signed_out_open(browser, body["alert_url"])
        _sign_in_here(browser, alerting.token)
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "alert-summary")))
        assert browser.find_element(By.ID, "alert-summary").text == body["summary"]
        assert console_problems(browser) == []

    def test_signed_in_click_from_another_site_opens_the_alert(self, browser: WebDriver, alerting: Alerting) -> None:
        """Slack is another site: the session cookie must travel on that top-level navigation."""
        alert_url = _slack_buttons(alerting)["Open alert"]
        _signed_out_open(browser, alert_url)
        _sign_in_here(browser, alerting.token)
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "alert-summary")))
        with _LinkPage(alert_url) as page:  # served as http://localhost:<port>: another site than 127.0.0.1
            browser.get(page.url)
            browser.find_element(By.ID, "go").click()
            wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "alert-summary")))
        assert urlsplit(browser.current_url).path == urlsplit(alert_url).path


class _LinkPage:
    """A page on another site (``localhost``) holding one link, like a chat message."""

    def __init__(self, target: str) -> None:
        body = f'<!doctype html><title>chat</title><a id="go" href="{target}">Open alert</a>'.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://localhost:{self._server.server_address[1]}/chat"

    def __enter__(self) -> _LinkPage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class TestSignInNext:
    """``next`` leads back to a dashboard page only: never to another origin."""

    @pytest.mark.parametrize(
        "target",
        [
            "https://evil.example/ui",
            "//evil.example/ui",
            "/\\evil.example",
            "/ui\\..\\..\\evil",
            "/ui/../v1/keys",
            "/ui/%2e%2e/v1/keys",
            "/uievil",
            "/ui\r\nLocation: https://evil.example",
            "javascript:alert(1)",
            "",
        ],
    )
    def test_refused_targets_go_to_the_overview(self, target: str) -> None:
        assert safe_next(target) == "/ui"

    @pytest.mark.parametrize(
        "target", ["/ui", "/ui/alerts/abc?project=demo", "/ui/models/a%2Fb/windows/2026-06-01T12%3A00%3A00%2B00%3A00"]
    )
    def test_dashboard_pages_are_kept(self, target: str) -> None:
        assert safe_next(target) == target

    def test_sign_in_posts_back_only_to_local_pages(self, alerting: Alerting) -> None:
        with httpx.Client(base_url=alerting.url, timeout=30) as client:
            page = client.get("/ui/signin", params={"next": "https://evil.example/ui"})
            assert 'name="next" value="/ui"' in page.text
            for target, landing in (
                ("//evil.example/x", "/ui"),
                ("/ui/alerts/x?project=demo", "/ui/alerts/x?project=demo"),
            ):
                form = {"csrf_token": csrf_of(client.get("/ui/signin").text), "api_key": alerting.token, "next": target}
                response = client.post("/ui/signin", data=form)
                assert response.status_code == 303
                assert response.headers["location"] == landing
                client.cookies.clear()

    def test_an_alert_link_while_signed_out_redirects_with_its_query(self, alerting: Alerting) -> None:
        alert_url = _slack_buttons(alerting)["Open alert"]
        with httpx.Client(timeout=30) as client:
            response = client.get(alert_url)
        assert response.status_code == 303
        parts = urlsplit(alert_url)
        assert response.headers["location"] == "/ui/signin?next=" + quote(f"{parts.path}?{parts.query}", safe="")


class TestOneWording:
    """The alert's numbers are the statistics' numbers: the demo's table words the same stored rows."""

    def test_summary_is_the_family_rows_in_words(self, alerting: Alerting) -> None:
        body = alerting.hook.requests[0].json
        with httpx.Client(base_url=alerting.url, timeout=30) as client:
            rows = client.get(
                "/v1/stats/drift",
                params={"model": body["model"], "metric": "family_drift", "since": body["window_start"]},
                headers={"authorization": f"Bearer {alerting.token}"},
            ).json()
        flagged = [r for r in rows if r["window_start"] == rows[0]["window_start"] and r["flagged"]]
        words = [family_words(r["dimension"], r["details"]) for r in flagged]
        assert set(body["summary"].split("; ")) == set(words)
        for row in flagged:  # "7 of 11 columns" is the family's stored drifted share, nothing else
            assert len(row["details"]["drifted_columns"]) / row["details"]["columns"] == row["value"]


class TestSnoozeFromTheAlertPage:
    """The alert page snoozes its monitor for the model (or every model) and lifts it; bad input is a 422."""

    def test_snooze_and_lift(self, alerting: Alerting) -> None:
        alert_path = urlsplit(_slack_buttons(alerting)["Open alert"]).path
        with httpx.Client(base_url=alerting.url, timeout=30) as client:
            form = {"csrf_token": csrf_of(client.get("/ui/signin").text), "api_key": alerting.token}
            assert client.post("/ui/signin", data=form).status_code == 303
            page = client.get(alert_path).text
            assert "The monitor is not snoozed for gpt-4o-mini." in page
            refused = client.post(
                f"{alert_path}/snooze", data={"csrf_token": csrf_of(page), "hours": "5", "scope": "model"}
            )
            assert refused.status_code == 422
            assert "hours: one of 0, 1, 4, 24, 72, 168" in refused.text
            saved = client.post(
                f"{alert_path}/snooze",
                data={"csrf_token": csrf_of(page), "hours": "4", "scope": "model"},
                follow_redirects=True,
            )
            assert saved.status_code == 200
            assert "Snooze saved." in saved.text
            assert re.search(r"gpt-4o-mini: snoozed until [0-9-]+ [0-9:]+ UTC by ui:key:", saved.text)
            snoozes = alerting.services.monitoring.alerts.snoozes.active(
                PROJECT, ["support-drift"], at=datetime.now(UTC)
            )
            assert [(s.model, s.until > datetime.now(UTC) + timedelta(hours=3)) for s in snoozes] == [
                ("gpt-4o-mini", True)
            ]
            lifted = client.post(
                f"{alert_path}/snooze",
                data={"csrf_token": csrf_of(saved.text), "hours": "0", "scope": "model"},
                follow_redirects=True,
            )
            assert "The monitor is not snoozed for gpt-4o-mini." in lifted.text


def test_an_admin_on_another_project_lands_on_the_alert(alerting: Alerting) -> None:
    """The link names the alert's project: an admin looking at another project is switched to it."""
    alert_url = _slack_buttons(alerting)["Open alert"]
    with httpx.Client(base_url=alerting.url, timeout=30) as client:
        form = {"csrf_token": csrf_of(client.get("/ui/signin").text), "api_key": ADMIN_KEY}
        assert client.post("/ui/signin", data=form).status_code == 303
        overview = client.get("/ui").text
        client.post("/ui/project", data={"csrf_token": csrf_of(overview), "project": HOSTILE_PROJECT})
        assert f'<option value="{HOSTILE_PROJECT}" selected>' in client.get("/ui").text
        page = client.get(alert_url)
        assert page.status_code == 200
        assert 'id="alert-summary"' in page.text
        assert f'<option value="{PROJECT}" selected>' in page.text
