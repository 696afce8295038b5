"""What each key scope may do, over every route of the OpenAPI document and every dashboard page.

The routes come from the app itself, so a new route is in the matrix the day it is added: a route
that sends events is ``ingest``, ``/v1/keys``, ``/v1/subjects`` (erasure) and ``/v1/audit`` are
administration (the ``keys`` permission), any other GET reads and any other method manages the project. A scope that lacks the permission gets a 403 naming its scope; one that
has it gets past authorization (whatever the dummy request then earns: 404, 422, 200…).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.ui.session import COOKIE, SessionSigner, UiSession
from loopwatch.process import serving_app
from streams.keys import SCOPE_PERMISSIONS, Permission
from tests.ui.conftest import ADMIN_KEY, UI_SECRET, csrf_of, dashboard_settings

SCOPES = ["ingest", "read", "admin", "review", None]  # None: a key made without a scope (full project access)
INGEST_ROUTES = {
    ("post", "/v1/inferences"),
    ("post", "/v1/feedback"),
    ("post", "/v1/traces"),
    ("post", "/v1/logs"),
    ("post", "/v1/metrics"),
}
REVIEW_ROUTES = {  # a named reviewer's key takes, reviews, skips and undoes queue items
    ("post", "/v1/queues/{queue_id}/next"),
    ("post", "/v1/queues/{queue_id}/items/{inference_id}/review"),
    ("post", "/v1/queues/{queue_id}/items/{inference_id}/skip"),
    ("post", "/v1/queues/{queue_id}/undo"),
}
REVIEW_PAGES = {"/ui/queues/x/review"}  # dashboard pages for reviewers only
PUBLIC = {"/healthz", "/readyz", "/metrics"}  # no key at all: process health and Prometheus
PROJECT = "scoped"


def permission_of(method: str, path: str) -> Permission:
    if (method, path) in INGEST_ROUTES:
        return "ingest"
    if path.startswith(("/v1/keys", "/v1/subjects", "/v1/audit")):  # keys, erasure, the audit log
        return "keys"
    if (method, path) in REVIEW_ROUTES:
        return "review"
    return "read" if method == "get" else "manage"


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(serving_app(dashboard_settings(data_dir))) as test_client:
        services = test_client.app.state.runtime  # type: ignore[attr-defined]
        token = services.keys.create(PROJECT, "seed").token
        event = {"event_id": "c-1", "model": "m", "prompt": "hi"}
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        assert test_client.post("/v1/inferences", content=orjson.dumps(event), headers=headers).status_code == 202
        yield test_client
        storage = services.storage
    storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def _operations(client: TestClient) -> list[tuple[str, str, dict]]:
    document = client.app.openapi()  # type: ignore[attr-defined]
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


class TestApiMatrix:
    """Every route of the OpenAPI document, with a key of every scope."""

    def test_only_health_and_metrics_need_no_key(self, client: TestClient) -> None:
        public = {path for _, path, operation in _operations(client) if not operation.get("security")}
        assert public == PUBLIC

    @pytest.mark.parametrize("scope", SCOPES)
    def test_each_route_allows_exactly_what_the_scope_allows(self, client: TestClient, scope: str | None) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        token = services.keys.create(PROJECT, f"matrix-{scope}", scope).token
        allowed = SCOPE_PERMISSIONS[scope or ""]
        checked = 0
        for method, path, _ in _operations(client):
            if path in PUBLIC:
                continue
            needed = permission_of(method, path)
            response = client.request(
                method.upper(),
                _fill(path),
                content=b"" if method != "get" else None,
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
            if needed in allowed:
                assert response.status_code not in {401, 403}, (scope, method, path, response.text)
            else:
                assert response.status_code == 403, (scope, method, path, response.status_code)
                assert (f"scope {scope!r}" if scope else "made without a scope") in response.text, response.text
            checked += 1
        assert checked >= 25  # noqa: PLR2004 - the matrix really covered the API

    def test_a_project_admin_key_manages_its_own_keys_only(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        headers = {"authorization": f"Bearer {services.keys.create(PROJECT, 'adm', 'admin').token}"}
        made = client.post("/v1/keys", json={"project": PROJECT, "scope": "ingest"}, headers=headers)
        assert made.status_code == 201 and made.json()["scope"] == "ingest"
        other = client.post("/v1/keys", json={"project": "another"}, headers=headers)
        assert other.status_code == 403 and "not 'another'" in other.text
        listed = client.get("/v1/keys", headers=headers).json()
        assert {key["project"] for key in listed} == {PROJECT}
        assert made.json()["key_id"] in {key["key_id"] for key in listed}

    def test_server_admin_key_creates_scoped_keys(self, client: TestClient) -> None:
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        made = client.post("/v1/keys", json={"project": PROJECT, "scope": "read"}, headers=headers)
        assert made.status_code == 201
        reader = {"authorization": f"Bearer {made.json()['token']}"}
        assert client.get("/v1/models", headers=reader).status_code == 200
        refused = client.post("/v1/inferences", json={"model": "m"}, headers=reader)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "this API key has scope 'read', which does not allow sending events"
        bad = client.post("/v1/keys", json={"project": PROJECT, "scope": "write"}, headers=headers)
        assert bad.status_code == 422


def _pages(client: TestClient) -> list[str]:
    """Every GET page of the dashboard, with its path parameters filled in."""

    def walk(routes: list[Any]) -> Iterator[APIRoute]:  # included routers nest (their own prefix in each path)
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)

    paths = [
        route.path
        for route in walk(client.app.routes)  # type: ignore[attr-defined]
        if route.path.startswith("/ui")
        and "GET" in route.methods
        and not route.path.startswith(("/ui/static", "/ui/signin", "/ui/{rest"))  # files, sign-in, not-found
    ]
    filled = [re.sub(r"\{start\}", "2026-11-23T10:00:00Z", re.sub(r"\{model(:path)?\}", "m", p)) for p in paths]
    return [_fill(path) for path in filled]


class TestDashboard:
    """Sign-in refuses an ingest key; a read key sees every page but changes nothing."""

    def _sign_in(self, client: TestClient, token: str) -> int:
        client.cookies.clear()
        page = client.get("/ui/signin")
        return client.post(
            "/ui/signin", data={"csrf_token": csrf_of(page.text), "api_key": token}, follow_redirects=False
        ).status_code

    def test_ingest_key_cannot_sign_in(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        token = services.keys.create(PROJECT, "app", "ingest").token
        client.cookies.clear()
        page = client.get("/ui/signin")
        response = client.post("/ui/signin", data={"csrf_token": csrf_of(page.text), "api_key": token})
        assert response.status_code == 403
        assert "it can only send events. Sign in with a read or admin key." in response.text

    def test_every_page_refuses_a_session_of_an_ingest_key(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        key = services.keys.create(PROJECT, "app", "ingest").key
        session = UiSession(nonce="n" * 16, expires=2_000_000_000, project=PROJECT, key_id=key.key_id)
        pages = _pages(client)
        assert len(pages) >= 10  # noqa: PLR2004 - every page is in the list
        for path in pages:
            client.cookies.clear()
            client.cookies.set(COOKIE, SessionSigner(SecretStr(UI_SECRET)).dumps(session), path="/ui")
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 403, (path, response.status_code)
            assert "scope &#39;ingest&#39;" in response.text or "scope 'ingest'" in response.text

    def test_read_key_sees_every_page_and_changes_nothing(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        assert self._sign_in(client, services.keys.create(PROJECT, "viewer", "read").token) == 303
        for path in _pages(client):
            response = client.get(path, follow_redirects=False)
            if path in REVIEW_PAGES:
                assert response.status_code == 403, (path, response.status_code)
                assert "your own key of scope &#39;review&#39;" in response.text
            else:
                assert response.status_code not in {401, 403}, (path, response.status_code)
        page = client.get("/ui/monitors/new")
        response = client.post("/ui/monitors/new", data={"csrf_token": csrf_of(page.text), "name": "x"})
        assert response.status_code == 403
        assert "sign in with an admin key to change the project" in response.text

    def test_review_key_sees_only_the_review_queues(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        assert self._sign_in(client, services.keys.create(PROJECT, "ana", "review").token) == 303
        for path in _pages(client):
            response = client.get(path, follow_redirects=False)
            if path.startswith("/ui/queues"):
                assert response.status_code not in {401, 403}, (path, response.status_code)
            elif path != "/ui/signout":
                assert response.status_code == 403, (path, response.status_code)
                assert "its pages are the review queues" in response.text

    def test_admin_key_may_change_the_project(self, client: TestClient) -> None:
        services = client.app.state.runtime  # type: ignore[attr-defined]
        assert self._sign_in(client, services.keys.create(PROJECT, "lead", "admin").token) == 303
        page = client.get("/ui/monitors/new")
        response = client.post("/ui/monitors/new", data={"csrf_token": csrf_of(page.text), "name": "x"})
        assert response.status_code != 403, response.text
