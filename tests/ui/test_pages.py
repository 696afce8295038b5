"""The dashboard over the real app (TestClient, embedded runner, chDB): sign-in and sessions, CSRF,
the security headers of every /ui response, hostile names staying text, and each page's content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import html5lib
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.ui.session import COOKIE, SessionSigner, UiSession, anonymous
from loopwatch.process import serving_app
from streams.storage import alerts as alert_rows
from streams.storage import audit
from tests.ui.conftest import (
    ADMIN_KEY,
    HOSTILE_COMMENT,
    HOSTILE_ERROR,
    HOSTILE_FEATURE,
    HOSTILE_MODEL,
    HOSTILE_PROJECT,
    HOSTILE_TAG,
    PROJECT,
    UI_SECRET,
    Seeded,
    csrf_of,
    dashboard_settings,
    seed,
)

HOSTILE = (HOSTILE_MODEL, HOSTILE_FEATURE, HOSTILE_TAG, HOSTILE_COMMENT, HOSTILE_ERROR)


@pytest.fixture(scope="module")
def app_client(data_dir: Path) -> Iterator[tuple[TestClient, Seeded]]:
    with TestClient(serving_app(dashboard_settings(data_dir))) as client:
        seeded = seed(client, client.app.state.runtime)  # type: ignore[attr-defined]
        yield client, seeded
        storage = client.app.state.runtime.storage  # type: ignore[attr-defined]
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def sign_in(client: TestClient, token: str) -> None:
    client.cookies.clear()
    page = client.get("/ui/signin")
    response = client.post(
        "/ui/signin", data={"csrf_token": csrf_of(page.text), "api_key": token, "next": "/ui"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui"


def scripts_and_handlers(page: str) -> tuple[list[str], list[str]]:
    """Executable scripts (not JSON data blocks) and on* attributes, as a browser's parser sees the page."""
    tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    scripts = [s.get("src", "") for s in tree.iter("script") if s.get("type") != "application/json"]
    handlers = [name for element in tree.iter() for name in element.attrib if name.lower().startswith("on")]
    return scripts, handlers


class TestAuth:
    """Every page needs a session; sessions come from a project key or the admin key."""

    def test_pages_redirect_to_sign_in(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, _ = app_client
        client.cookies.clear()
        for path in (
            "/ui",
            f"/ui/models/{quote(HOSTILE_MODEL, safe='')}",
            "/ui/alerts",
            "/ui/feedback",
            "/ui/monitors",
        ):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/ui/signin?next={quote(path, safe='')}"

    def test_session_cookie_is_httponly_lax(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        client.cookies.clear()
        page = client.get("/ui/signin")
        response = client.post(
            "/ui/signin", data={"csrf_token": csrf_of(page.text), "api_key": seeded.token}, follow_redirects=False
        )
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie
        # Lax: a link from Slack (another site) arrives signed in; cross-site POSTs carry no cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/ui" in cookie
        assert client.get("/ui").status_code == 200

    def test_wrong_key_is_refused(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, _ = app_client
        client.cookies.clear()
        page = client.get("/ui/signin")
        response = client.post("/ui/signin", data={"csrf_token": csrf_of(page.text), "api_key": "lw_nope"})
        assert response.status_code == 401
        assert "Unknown or revoked API key" in response.text
        assert client.get("/ui", follow_redirects=False).status_code == 303

    def test_open_redirect_refused(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        client.cookies.clear()
        page = client.get("/ui/signin")
        response = client.post(
            "/ui/signin",
            follow_redirects=False,
            data={"csrf_token": csrf_of(page.text), "api_key": seeded.token, "next": "//evil.example/ui"},
        )
        assert response.headers["location"] == "/ui"

    def test_project_key_sees_only_its_project(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        page = client.get("/ui").text
        assert "gpt-4o-mini" in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in page  # the hostile project's model
        assert 'id="project-picker"' not in page

    def test_admin_sees_and_switches_projects(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, _ = app_client
        sign_in(client, ADMIN_KEY)
        page = client.get("/ui").text
        assert f'<option value="{HOSTILE_PROJECT}"' in page
        assert f'<option value="{PROJECT}"' in page
        response = client.post(
            "/ui/project", data={"csrf_token": csrf_of(page), "project": HOSTILE_PROJECT}, follow_redirects=False
        )
        assert response.status_code == 303
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/ui").text

    def test_changing_the_admin_key_ends_admin_sessions(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, _ = app_client
        sign_in(client, ADMIN_KEY)
        assert client.get("/ui", follow_redirects=False).status_code == 200
        settings = client.app.state.runtime.settings  # type: ignore[attr-defined]
        old = settings.admin_key
        settings.admin_key = SecretStr(ADMIN_KEY + "-rotated")
        try:
            assert client.get("/ui", follow_redirects=False).status_code == 303  # the old cookie is no admin any more
        finally:
            settings.admin_key = old

    def test_a_non_ascii_admin_token_is_refused_not_an_error(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, _ = app_client
        response = client.get("/v1/keys", headers={"authorization": "Bearer clé-ünïcode".encode()})
        assert response.status_code == 401

    def test_revoked_key_ends_its_sessions(self, data_dir: Path) -> None:
        with TestClient(serving_app(dashboard_settings(data_dir))) as client:
            keys = client.app.state.runtime.keys  # type: ignore[attr-defined]
            new = keys.create("short-lived", "ui")
            sign_in(client, new.token)
            assert client.get("/ui", follow_redirects=False).status_code == 200
            keys.revoke(new.key.key_id)
            assert client.get("/ui", follow_redirects=False).status_code == 303
            client.app.state.runtime.storage.command(  # type: ignore[attr-defined]
                f"DROP DATABASE IF EXISTS {client.app.state.runtime.storage.database}"  # type: ignore[attr-defined]
            )

    def test_replicas_with_the_same_secret_accept_each_others_cookies(self) -> None:
        session = UiSession(nonce="n", expires=anonymous().expires, project="p", key_id="k")
        cookie = SessionSigner(SecretStr(UI_SECRET)).dumps(session)
        assert SessionSigner(SecretStr(UI_SECRET)).loads(cookie) == session
        assert SessionSigner(SecretStr("another-secret-of-enough-length")).loads(cookie) is None
        forged = cookie.split(".")[0] + "." + cookie.split(".")[1][::-1]
        assert SessionSigner(SecretStr(UI_SECRET)).loads(forged) is None

    def test_placeholder_ui_secret_refused(self) -> None:
        from pydantic import ValidationError

        from schemas.settings import Settings

        with pytest.raises(ValidationError, match="ui_secret must be a real secret"):
            Settings(_env_file=None, ui_secret="changeme")  # type: ignore[call-arg]  # noqa: S106 - the placeholder refused

    def test_expired_session_is_refused(self) -> None:
        signer = SessionSigner(SecretStr(UI_SECRET))
        assert signer.loads(signer.dumps(UiSession(nonce="n", expires=1, project="p", key_id="k"))) is None


class TestCsrf:
    """Every form POST needs the token of the session that shows the form."""

    def test_sign_in_without_token_refused(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        client.cookies.clear()
        client.get("/ui/signin")
        response = client.post("/ui/signin", data={"api_key": seeded.token}, follow_redirects=False)
        assert response.status_code == 403
        assert client.get("/ui", follow_redirects=False).status_code == 303

    def test_token_of_another_session_refused(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        other = csrf_of(client.get("/ui").text)
        sign_in(client, seeded.token)  # a new session: a new nonce
        monitoring = client.app.state.runtime.monitoring  # type: ignore[attr-defined]
        alert = alert_rows.listed(monitoring.alerts.storage, PROJECT, status="open", limit=1)[0]
        response = client.post(
            f"/ui/alerts/{alert.alert_id}/ack", data={"csrf_token": other, "note": "x"}, follow_redirects=False
        )
        assert response.status_code == 403
        found = alert_rows.detail(monitoring.alerts.storage, PROJECT, alert.alert_id)
        assert found is not None
        assert found.status == "open"

    def test_sign_out_needs_the_token(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        assert client.post("/ui/signout", data={"csrf_token": "forged"}, follow_redirects=False).status_code == 403
        assert client.get("/ui", follow_redirects=False).status_code == 200


class TestHeaders:
    """A strict CSP (no inline script, no eval, no inline style) on every /ui response."""

    PATHS = (
        "/ui",
        "/ui/signin",
        "/ui/alerts",
        "/ui/feedback",
        "/ui/monitors",
        "/ui/models/gpt-4o-mini",
        "/ui/static/ui.js",
        "/ui/static/ui.css",
        "/ui/static/vendor/plotly.min.js",
        "/ui/static/nope.js",
        "/ui/alerts/does-not-exist",
        "/ui/models/gpt-4o-mini?since=yesterday",
        "/ui/no/such/page",
        "/ui/models/" + "m" * 201,
        "/ui/feedback?cursor=not-a-cursor",
    )

    def test_csp_on_every_response(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        for signed_in in (False, True):
            if signed_in:
                sign_in(client, seeded.token)
            else:
                client.cookies.clear()
            for path in self.PATHS:
                response = client.get(path, follow_redirects=False)
                policy = response.headers.get("content-security-policy", "")
                directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ") if d}
                assert directives.get("script-src") == ["'self'"], (path, policy)
                assert directives.get("style-src") == ["'self'"], (path, policy)
                assert directives.get("default-src") == ["'none'"], (path, policy)
                assert "unsafe" not in policy, path
                assert response.headers["x-content-type-options"] == "nosniff"
                assert response.headers["x-frame-options"] == "DENY"

    def test_errors_are_pages_too(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        for path, code in (("/ui/no/such/page", 404), ("/ui/models/" + "m" * 201, 422), ("/ui/alerts?kind=nope", 422)):
            response = client.get(path)
            assert response.status_code == code, path
            assert response.headers["content-type"].startswith("text/html"), path
        assert client.post("/ui/nothing-here", data={"a": "b"}).status_code == 404

    def test_templates_and_static_files_are_package_data(self) -> None:
        """A non-editable install carries every template and static file (pyproject's package-data globs)."""
        import fnmatch
        import tomllib

        root = Path(__file__).resolve().parents[2]
        globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api.ui"]
        folder = root / "api" / "ui"
        for path in [*(folder / "templates").iterdir(), *(folder / "static").iterdir()]:
            relative = path.relative_to(folder).as_posix()
            assert any(fnmatch.fnmatch(relative, pattern) for pattern in globs), relative

    def test_plotly_served_from_the_installed_package(self, app_client: tuple[TestClient, Seeded]) -> None:
        """The installed bundle less its one call that injects maplibre's CSS (an inline style)."""
        import plotly

        client, _ = app_client
        response = client.get("/ui/static/vendor/plotly.min.js")
        assert response.status_code == 200
        installed = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
        call = re.search(rb'"map"===\w+&&\w+\(\d+\)', installed)
        assert call, "the installed plotly.js no longer injects maplibre's CSS this way: see api/ui/assets.py"
        assert response.content == installed[: call.start()] + b"!1" + installed[call.end() :]
        assert response.headers["content-type"].startswith("text/javascript")
        again = client.get("/ui/static/vendor/plotly.min.js", headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304

    def test_no_inline_script_or_handler_in_any_page(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        for path in (
            "/ui",
            "/ui/models/gpt-4o-mini",
            "/ui/alerts",
            "/ui/feedback",
            "/ui/calls",
            "/ui/monitors",
            "/ui/signin",
        ):
            page = client.get(path).text
            scripts, handlers = scripts_and_handlers(page)
            assert all(src.startswith("/ui/static/") for src in scripts), (path, scripts)
            assert handlers == [], path


class TestHostileNames:
    """Model, feature, tag and feedback text from ingest never become markup."""

    def test_escaped_everywhere(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.hostile_token)
        model = quote(HOSTILE_MODEL, safe="")
        pages = {
            "/ui": client.get("/ui").text,
            "model": client.get(f"/ui/models/{model}").text,
            "feedback": client.get("/ui/feedback").text,
        }
        pages["calls"] = client.get("/ui/calls", params={"status": "error"}).text
        pages["call"] = client.get("/ui/calls/h0-0").text
        window = client.get(f"/ui/models/{model}/windows/2026-06-01T12:00:10%2B00:00")
        assert window.status_code == 200, window.text[:300]
        pages["window"] = window.text
        for name, page in pages.items():
            for hostile in HOSTILE:
                assert hostile not in page, (name, hostile)
            scripts, handlers = scripts_and_handlers(page)
            assert all(src.startswith("/ui/static/") for src in scripts), (name, scripts)
            assert handlers == [], name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["/ui"]
        assert "alert(4)" in pages["feedback"]  # shown, as text
        for name in ("calls", "call", "model"):  # the error type too, in the listing, a call and the breakdown
            assert "&lt;img src=x onerror=alert(5)&gt;" in pages[name], name
        assert "\\u003cimg src=x onerror=alert(2)\\u003e" in pages["window"] or "&lt;img" in pages["window"]


class TestPages:
    """What each page shows for the demo-like traffic (a drift from the second window)."""

    def test_overview_flags_the_drifted_models(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        tree = html5lib.parse(client.get("/ui").text, treebuilder="etree", namespaceHTMLElements=False)
        rows = {row.get("data-model"): row for row in tree.iter("tr") if row.get("data-model")}
        assert set(rows) == {"gpt-4o-mini", "claude-3-5-haiku-latest", "llama-3-8b-internal"}
        for row in rows.values():
            assert row.get("data-health") in ("critical", "warning")
            text = "".join(row.itertext())
            assert "drifted:" in text
            assert "vs ref" in text  # the change against the reference windows
            assert any(str(el.tag).endswith("}svg") for el in row.iter())  # sparklines

    def test_model_page_has_every_chart_with_data(self, app_client: tuple[TestClient, Seeded]) -> None:
        import json

        client, seeded = app_client
        sign_in(client, seeded.token)
        for interval in ("", "20"):
            response = client.get("/ui/models/gpt-4o-mini", params={"interval": interval})
            assert response.status_code == 200
            tree = html5lib.parse(response.text, treebuilder="etree", namespaceHTMLElements=False)
            blocks = {
                s.get("id"): json.loads(s.text) for s in tree.iter("script") if s.get("type") == "application/json"
            }
            for chart in (
                "chart-latency",
                "chart-errors",
                "chart-cost",
                "chart-tokens",
                "chart-drift",
                "chart-thumbs_up_rate",
            ):
                assert blocks[f"{chart}-data"]["data"], (interval, chart)
            assert blocks["chart-drift-data"]["layout"]["shapes"]  # alert markers on the time axis
            assert {t["name"] for t in blocks["chart-cost-data"]["data"]} >= {"all", "route=/chat"}
            thumbs = blocks["chart-thumbs_up_rate-data"]["data"]
            assert any(t.get("fill") == "tonexty" for t in thumbs)  # the confidence band
            assert "chart-version-count-data" in blocks  # two model versions
        assert client.get("/ui/models/gpt-4o-mini", params={"since": "nope"}).status_code == 422

    def test_window_drill_down(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        page = client.get("/ui/models/gpt-4o-mini/windows/2026-06-01T12:00:20%2B00:00")
        assert page.status_code == 200, page.text[:300]
        tree = html5lib.parse(page.text, treebuilder="etree", namespaceHTMLElements=False)
        table = next(t for t in tree.iter("table") if t.get("id") == "column-drift")
        flagged = [r for r in table.iter("tr") if r.get("class") == "flagged"]
        assert flagged, "no drifted column in the drifted window"
        assert "prompt." in page.text
        assert "response." in page.text
        report = client.get("/ui/models/gpt-4o-mini/windows/2026-06-01T12:00:20%2B00:00/report")
        assert report.status_code == 200
        assert "sha256-" in report.headers["content-security-policy"]  # the report's own hashed CSP
        assert client.get("/ui/models/gpt-4o-mini/windows/2030-01-01T00:00:00").status_code == 404

    def test_ack_with_a_note(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        page = client.get("/ui/alerts", params={"status": "open", "model": "llama-3-8b-internal"}).text
        alert_id = next(
            r.get("data-alert")
            for r in html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False).iter("tr")
            if r.get("data-alert")
        )
        detail = client.get(f"/ui/alerts/{alert_id}").text
        response = client.post(
            f"/ui/alerts/{alert_id}/ack",
            data={"csrf_token": csrf_of(detail), "note": "<b>on it</b>"},
            follow_redirects=True,
        )
        assert response.status_code == 200
        assert "Acknowledged." in response.text
        assert "&lt;b&gt;on it&lt;/b&gt;" in response.text
        api = client.get(f"/v1/alerts/{alert_id}", headers={"authorization": f"Bearer {seeded.token}"}).json()
        assert api["status"] == "acked"
        assert api["ack_note"] == "<b>on it</b>"
        assert api["acked_by"].startswith("ui:key:")

    def test_open_counts_match_the_open_alerts(self, app_client: tuple[TestClient, Seeded]) -> None:
        """The overview's health counts equal the open alerts the API lists, acknowledged ones left out."""
        from collections import Counter

        client, _ = app_client
        storage = client.app.state.runtime.monitoring.alerts.storage  # type: ignore[attr-defined]
        listed = Counter((a.model, a.severity) for a in alert_rows.listed(storage, PROJECT, status="open", limit=1000))
        assert alert_rows.open_counts(storage, PROJECT) == dict(listed)
        assert alert_rows.listed(storage, PROJECT, status="acked", limit=1000)  # the ack test ran: some are left out
        assert sum(listed.values()) < len(alert_rows.listed(storage, PROJECT, limit=1000))

    def test_feedback_filters_and_exports(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        page = client.get("/ui/feedback", params={"kind": "correction", "model": "gpt-4o-mini"}).text
        tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
        kinds = {a.get("data-kind") for a in tree.iter("article")}
        assert kinds == {"correction"}
        first_page = client.get("/ui/feedback", params={"kind": "thumbs"}).text
        link = re.search(r'rel="next" href="([^"]+)"', first_page)
        assert link, "no next page"
        second = client.get(link.group(1).replace("&amp;", "&")).text
        assert "First page" in second
        assert second != first_page
        csv_export = client.get(
            "/ui/feedback/export", params={"format": "csv", "kind": "correction", "model": "gpt-4o-mini"}
        )
        assert csv_export.status_code == 200
        api = client.get(
            "/v1/feedback/export",
            params={"format": "csv", "kind": "correction", "model": "gpt-4o-mini"},
            headers={"authorization": f"Bearer {seeded.token}"},
        )
        assert csv_export.content == api.content  # the same export code
        assert client.get("/ui/feedback", params={"tag": "no-colon"}).status_code == 422

    def test_invalid_monitor_shows_the_api_message(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        form = client.get("/ui/monitors/new").text
        fields = {
            "csrf_token": csrf_of(form),
            "name": "p95 change",
            "scope": "*",
            "family": "latency",
            "metric": "latency_p95_ms",
            "dimension": "",
            "condition_type": "p_value",
            "severity": "warning",
            "enabled": "on",
        }
        page = client.post("/ui/monitors/new", data=fields)
        assert page.status_code == 422
        api = client.post(
            "/v1/monitors",
            headers={"authorization": f"Bearer {seeded.token}"},
            json={
                "name": "p95 change",
                "family": "latency",
                "metric": "latency_p95_ms",
                "condition": {"type": "p_value"},
            },
        )
        assert api.status_code == 422
        message = api.json()["detail"][0]["msg"]
        assert "carries no p-value" in message
        assert message.replace("'", "&#39;") in page.text

    def test_create_then_edit_a_monitor(self, data_dir: Path) -> None:
        """A valid form creates the monitor (replacing the built-ins), editing it keeps its masked secret,
        and the built-ins' read-only refusal is the API's 409 message."""
        with TestClient(serving_app(dashboard_settings(data_dir, allow_private_webhooks=True))) as client:
            services = client.app.state.runtime  # type: ignore[attr-defined]
            token = services.keys.create("monitors", "ui").token
            sign_in(client, token)
            builtin = client.get("/ui/monitors/default-family-drift")
            assert builtin.status_code == 200
            refused = client.post(
                "/ui/monitors/default-family-drift",
                data={
                    "csrf_token": csrf_of(builtin.text),
                    "name": "mine now",
                    "scope": "*",
                    "family": "drift",
                    "metric": "family_drift",
                    "condition_type": "flagged",
                    "severity": "warning",
                },
            )
            assert refused.status_code == 409
            assert "is a built-in default and read-only" in refused.text
            form = client.get("/ui/monitors/new").text
            created = client.post(
                "/ui/monitors/new",
                follow_redirects=False,
                data={
                    "csrf_token": csrf_of(form),
                    "monitor_id": "p95",
                    "name": "slow",
                    "scope": "*",
                    "family": "latency",
                    "metric": "latency_p95_ms",
                    "condition_type": "threshold",
                    "operator": "gt",
                    "value": "2000",
                    "severity": "critical",
                    "enabled": "on",
                    "channel_type": ["webhook", ""],
                    "channel_url": ["http://127.0.0.1:9/hook", ""],
                    "channel_secret": ["s3cret-value-of-16-chars", ""],
                    "channel_headers": ["X-Team: ml", ""],
                },
            )
            assert created.status_code == 303, re.findall(r"<li>(.*?)</li>", created.text)
            edit = client.get("/ui/monitors/p95").text
            assert "s3cret-value-of-16-chars" not in edit  # masked in the form
            secret = re.search(r'<input id="c1-secret" name="channel_secret" value="([^"]*)"', edit)
            assert secret
            assert secret.group(1) == "********"
            assert 'id="c2-type"' in edit  # an empty row to add another channel

            saved = client.post(
                "/ui/monitors/p95",
                follow_redirects=False,
                data={
                    "csrf_token": csrf_of(edit),
                    "name": "slower",
                    "scope": "*",
                    "family": "latency",
                    "metric": "latency_p95_ms",
                    "condition_type": "threshold",
                    "operator": "gt",
                    "value": "3000",
                    "severity": "critical",
                    "enabled": "on",
                    "cooldown_seconds": "900",  # form fields are text: read as numbers, as the API would
                    "retrain_after": "3",
                    "channel_type": ["webhook", ""],
                    "channel_url": ["http://127.0.0.1:9/hook", ""],
                    "channel_secret": [secret.group(1), ""],
                    "channel_headers": ["X-Team: ********", ""],
                },
            )
            assert saved.status_code == 303, re.findall(r"<li>(.*?)</li>", saved.text)
            monitor = services.monitoring.store.get("monitors", "p95")
            assert monitor.name == "slower"
            assert monitor.condition.value == 3000
            assert (monitor.cooldown_seconds, monitor.retrain_after) == (900, 3)
            assert monitor.channels[0].secret.get_secret_value() == "s3cret-value-of-16-chars"  # kept through the mask
            assert monitor.channels[0].headers == {"X-Team": "ml"}
            key_id = services.keys.resolve(token).key_id
            logged = audit.entries(services.storage, project="monitors")
            assert [(e.action, e.actor, e.target) for e in logged] == [
                ("monitor.update", f"ui:key:{key_id}", "p95"),
                ("monitor.create", f"ui:key:{key_id}", "p95"),
            ]
            services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")

    def test_who_monitors_each_model_and_the_scope_warning(self, data_dir: Path) -> None:
        """The overview and the model page name the monitors that judge each model (a user monitor on one
        model leaves the built-ins on the others); a scope naming no sent model is saved with a warning."""
        with TestClient(serving_app(dashboard_settings(data_dir))) as client:
            services = client.app.state.runtime  # type: ignore[attr-defined]
            token = services.keys.create("cover", "ui").token
            events = [{"event_id": f"{m}-1", "model": m, "latency_ms": 5.0} for m in ("chat", "search")]
            posted = client.post("/v1/inferences", json=events, headers={"authorization": f"Bearer {token}"})
            assert posted.status_code == 202
            sign_in(client, token)
            form = client.get("/ui/monitors/new").text
            fields = {
                "csrf_token": csrf_of(form),
                "name": "chat is slow",
                "scope": "chat",
                "family": "latency",
                "metric": "latency_p95_ms",
                "condition_type": "threshold",
                "operator": "gt",
                "value": "2000",
                "severity": "critical",
                "enabled": "on",
            }
            created = client.post("/ui/monitors/new", data={**fields, "monitor_id": "chat-p95"}, follow_redirects=False)
            assert created.headers["location"] == "/ui/monitors?saved=chat-p95"  # no warning: chat has events
            tree = html5lib.parse(client.get("/ui").text, treebuilder="etree", namespaceHTMLElements=False)
            monitored = {
                row.get("data-model"): [a.get("data-monitor") for a in row.iter("a") if a.get("data-monitor")]
                for row in tree.iter("tr")
                if row.get("data-model")
            }
            builtins = ["default-family-drift", "default-thumbs-drop", "default-latency-p95", "default-spend-anomaly"]
            assert monitored == {
                "chat": ["chat-p95", *(b for b in builtins if b != "default-latency-p95")],
                "search": builtins,
            }
            model_page = client.get("/ui/models/chat").text
            assert 'id="monitored-by"' in model_page
            assert "chat is slow</a>" in model_page
            typo = client.post("/ui/monitors/new", data={**fields, "scope": "chta"}, follow_redirects=True)
            assert typo.status_code == 200
            warning = re.search(
                r'<div class="card warning-box" role="status" id="monitor-warnings">(.*?)</div>', typo.text, re.DOTALL
            )
            assert warning, typo.text
            assert "scope &#39;chta&#39; names no model this project has sent" in warning.group(1)
            assert "did you mean &#39;chat&#39;?" in warning.group(1)
            services.storage.command(f"DROP DATABASE IF EXISTS {services.storage.database}")


def _rows(page: str) -> dict[str, str]:
    tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    return {
        row.get("data-model"): " ".join("".join(row.itertext()).split())
        for row in tree.iter("tr")
        if row.get("data-model")
    }


def _tile_values(page: str) -> dict[str, list[str]]:
    """Per model, the overview's latest values (calls, p95, cost, thumbs-up) as shown."""
    tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    return {
        row.get("data-model"): [
            " ".join("".join(div.itertext()).split()) for div in row.iter("div") if div.get("class") == "value"
        ]
        for row in tree.iter("tr")
        if row.get("data-model")
    }


def _charts(page: str) -> dict[str, Any]:
    import json

    tree = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    return {s.get("id"): json.loads(s.text) for s in tree.iter("script") if s.get("type") == "application/json"}


class TestPeopleReadIt:
    """What a person reads: no future window taking over, unpriced and unevaluated said as such,
    plurals that agree, no internal names."""

    def test_future_windows_do_not_become_the_latest(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.timely_token)
        values = _tile_values(client.get("/ui").text)["gpt-4o-mini"]
        assert values[0] == "30", values  # the calls of the last window before now, not 2036's single call
        page = client.get("/ui/models/gpt-4o-mini").text
        assert "2 windows of this model start after now" in page
        calls_chart = _charts(page)["chart-calls-data"]["data"][0]
        starts = [datetime.fromisoformat(x) for x in calls_chart["x"]]
        assert max(starts) < seeded.now  # opened on the range that ends now, not on 2036
        axis = _charts(page)["chart-calls-data"]["layout"]["xaxis"]["range"]
        assert datetime.fromisoformat(axis[1]) >= seeded.now  # the axis runs to now: silence shows as such
        assert len([y for y in calls_chart["y"] if y is not None]) == 8  # both runs of windows
        assert calls_chart["y"].count(None) == 1  # the line breaks once, at the gap between them
        later = client.get(
            "/ui/models/gpt-4o-mini", params={"since": "2026-01-01T00:00", "until": "2037-01-01T00:00"}
        ).text
        assert "2036-01-01T00:00:00Z" in _charts(later)["chart-calls-data"]["data"][0]["x"]  # still reachable

    def test_a_model_without_a_price_is_unpriced(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.timely_token)
        row = _rows(client.get("/ui").text)["private-llm-v7"]
        assert "unpriced" in row
        assert "30 calls without a known price" in row
        assert "$0.0000" not in row
        page = client.get("/ui/models/private-llm-v7").text
        assert "Unpriced: no known price for this model (30 calls with tokens in the range)." in page
        assert "chart-cost-data" not in page  # no $0 line

    def test_a_window_too_small_for_its_monitor_says_so(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.timely_token)
        row = _rows(client.get("/ui").text)["slowpoke"]
        assert "9,000 ms" in row
        assert "p95 latency not evaluated: 5 samples, the monitor needs 20" in row

    def test_rates_carry_their_sample_size(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        row = _rows(client.get("/ui").text)["gpt-4o-mini"]
        assert re.search(r"\d+% of [\d,]+ ratings?", row), row

    def test_counts_agree_with_their_nouns(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        pages = [client.get(path).text for path in ("/ui", "/ui/alerts", "/ui/models/gpt-4o-mini")]
        for page in pages:
            assert not re.search(r"\b1 (open alerts|alerts|attempts|models)\b", page)
        assert re.search(r"\d+ open alerts?<", pages[0])
        assert re.search(r"[\d,]+ attempts?<", pages[1])
        assert "Each point is one 10 s window" in pages[2]
        charts = _charts(pages[2])
        assert charts["chart-calls-data"]["layout"]["yaxis"]["title"]["text"] == "calls"
        assert "per 10 s" in pages[2]
        assert "Each point is a 1 min bucket" in client.get("/ui/models/gpt-4o-mini", params={"interval": "60"}).text

    def test_no_internal_names(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        window = client.get("/ui/models/gpt-4o-mini/windows/2026-06-01T12:00:20%2B00:00").text
        assert "first_window" not in window
        assert re.search(r"has_question</th><td>\d+% yes</td><td>\d+% yes</td><td>[+-]\d+ points</td>", window)
        assert not re.search(r"word_count</th><td>\d+% yes", window)  # a count stays a count
        assert "the model&#39;s first window" in window or "the model's first window" in window
        feedback = client.get("/ui/feedback", params={"kind": "thumbs"}).text
        shown = set(re.findall(r'<strong class="feedback-what">([^<]*)</strong>', feedback))
        assert shown
        assert shown <= {"thumbs up", "thumbs down"}

    def test_monitor_list_speaks_plainly(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.timely_token)  # no monitor of its own: the built-ins
        page = client.get("/ui/monitors").text
        assert "above 5,000" in page
        assert "significant drop (α = 0.002)" in page
        assert "flagged by the detector" in page
        assert "every model" in page
        assert "none: listed only" in page
        assert "threshold gt" not in page
        assert "p_value" not in page

    def test_monitor_list_names_every_channel_type(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        channels = [
            {"type": "email", "to": ["oncall@example.com"], "digest_minutes": 30},
            {"type": "email", "to": ["ml@example.com"]},
        ]
        body = {
            "monitor_id": "mailed",
            "name": "Mailed",
            "family": "latency",
            "metric": "latency_p95_ms",
            "condition": {"type": "threshold", "operator": "gt", "value": 9e9},
            "channels": channels,
        }
        headers = {"authorization": f"Bearer {seeded.token}"}
        assert client.post("/v1/monitors", json=body, headers=headers).status_code == 201
        try:
            row = client.get("/ui/monitors").text.split('href="/ui/monitors/mailed"')[1].split("</tr>")[0]
        finally:
            assert client.delete("/v1/monitors/mailed", headers=headers).status_code == 204
        assert "email (digest of 30 min), email" in row
        assert "signed webhook" not in row

    def test_monitor_form_offers_the_models(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        form = client.get("/ui/monitors/new").text
        tree = html5lib.parse(form, treebuilder="etree", namespaceHTMLElements=False)
        scope = next(s for s in tree.iter("select") if s.get("name") == "scope")
        assert [o.get("value") for o in scope.iter("option")] == [
            "*",
            "claude-3-5-haiku-latest",
            "gpt-4o-mini",
            "llama-3-8b-internal",
        ]
        assert "<textarea" not in form.split('id="channels"')[0]  # no raw JSON box for channels


def _tree(page: str) -> Any:
    return html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class TestCallsPages:
    """The calls explorer, a call's page, the error types of the model page and the window's examples."""

    def test_calls_filtered_like_the_api(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        params = {"model": "gpt-4o-mini", "status": "error", "error_type": "timeout"}
        page = client.get("/ui/calls", params=params)
        assert page.status_code == 200
        rows = [r for r in _tree(page.text).iter("tr") if r.get("data-event-id")]
        api = client.get("/v1/inferences", params={**params, "limit": 50}, headers=_bearer(seeded.token)).json()
        assert [r.get("data-event-id") for r in rows] == [item["event_id"] for item in api["items"]]
        assert rows
        assert all("timeout" in "".join(r.itertext()) for r in rows)

    def test_paging_follows_the_cursor(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        seen: list[str] = []
        url = "/ui/calls?model=claude-3-5-haiku-latest"
        for _ in range(3):
            tree = _tree(client.get(url).text)
            seen += [r.get("data-event-id") for r in tree.iter("tr") if r.get("data-event-id")]
            url = next(a.get("href") for a in tree.iter("a") if a.get("rel") == "next")
        assert len(seen) == len(set(seen)) == 150
        api = client.get(
            "/v1/inferences", params={"model": "claude-3-5-haiku-latest", "limit": 150}, headers=_bearer(seeded.token)
        ).json()
        assert seen == [item["event_id"] for item in api["items"]]

    def test_bad_filters_are_explained(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        for params, message in (
            ({"min_latency_ms": "9", "max_latency_ms": "1"}, "&#39;min_latency_ms&#39; must not be above"),
            ({"min_cost_usd": "cheap"}, "min_cost_usd: expected a number"),
            ({"window_start": "2026-06-01T12:00:00"}, "&#39;window_start&#39; needs &#39;model&#39;"),
            ({"status": "meh"}, "status: one of ok, error"),
            ({"cursor": "abc"}, "cursor: not a cursor of this listing"),
        ):
            response = client.get("/ui/calls", params=params)
            assert response.status_code == 422, params
            assert message in response.text, (params, response.text[-800:])

    def test_a_call_with_its_feedback(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        feedback = client.get(
            "/v1/feedback", params={"kind": "correction", "limit": 1}, headers=_bearer(seeded.token)
        ).json()["items"][0]
        explorer = client.get("/ui/feedback", params={"kind": "correction"}).text
        assert f'href="/ui/calls/{quote(feedback["inference_id"], safe="")}"' in explorer
        page = client.get(f"/ui/calls/{quote(feedback['inference_id'], safe='')}")
        assert page.status_code == 200
        tree = _tree(page.text)
        prompt = next(el for el in tree.iter("pre") if el.get("id") == "prompt")
        assert prompt.text == feedback["inference"]["prompt"]
        kinds = [r.get("data-kind") for r in tree.iter("tr") if r.get("data-kind")]
        assert "correction" in kinds
        assert client.get("/ui/calls/no-such-call").status_code == 404

    def test_model_page_breaks_errors_down_by_type(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        tree = _tree(client.get("/ui/models/gpt-4o-mini").text)
        card = next(el for el in tree.iter("div") if el.get("id") == "error-types")
        links = {"".join(a.itertext()): a.get("href") for a in card.iter("a")}
        assert "timeout" in links
        row = next(r for r in card.iter("tr") if "timeout" in "".join(r.itertext()))
        count = int("".join(list(row.iter("td"))[1].itertext()).replace(",", ""))
        listed = [r.get("data-event-id") for r in _tree(client.get(links["timeout"]).text).iter("tr")]
        assert len([event_id for event_id in listed if event_id]) == count > 0  # the link lists exactly those

    def test_window_shows_example_calls_of_the_drifted_families(self, app_client: tuple[TestClient, Seeded]) -> None:
        client, seeded = app_client
        sign_in(client, seeded.token)
        page = client.get("/ui/models/gpt-4o-mini/windows/2026-06-01T12:00:20%2B00:00").text
        tree = _tree(page)
        families = {el.get("data-family"): el for el in tree.iter("div") if el.get("data-family")}
        assert "prompt" in families
        prompt = families["prompt"]
        headings = ["".join(h.itertext()) for h in prompt.iter("h4")]
        assert any(h.startswith("Highest prompt.length_chars") for h in headings), headings
        cards = [el for el in prompt.iter("div") if el.get("class") == "call-card"]
        assert len(cards) >= 6  # reference and current side by side, then the extremes
        first = next(a.get("href") for a in cards[0].iter("a"))
        assert client.get(first).status_code == 200
