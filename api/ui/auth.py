"""Sign in with a project API key (or the admin key: every project), switch project, sign out."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Query, Response

from api.ui.session import UiSession, anonymous
from api.ui.web import UiDep, UiRoute, VisitorDep, admin_matches, first, redirect
from streams.keys import admin_fingerprint

router = APIRouter(prefix="/ui", route_class=UiRoute)


def safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: ``/ui`` or below it, no scheme or host (``//host``), no
    backslash, control character or dot segment a browser could bend into another origin or path;
    anything else goes to ``/ui``. An open redirect is a phishing tool."""
    if not target or any(ord(ch) < 0x21 or ch in "\\\x7f" for ch in target):
        return "/ui"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/ui" or parts.path.startswith("/ui/")):
        return "/ui"
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return "/ui"
    return target


@router.get("/signin")
def signin_page(ui: VisitorDep, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return ui.render("signin.html", next=safe_next(next), error=None)


@router.post("/signin")
async def signin(ui: VisitorDep) -> Response:
    fields = await ui.form()
    token, target = first(fields, "api_key"), safe_next(first(fields, "next"))
    fresh = anonymous()
    if token and admin_matches(ui.runtime, token):
        admin = ui.runtime.settings.admin_key
        assert admin is not None  # admin_matches checked it
        ui.sign_in(UiSession(nonce=fresh.nonce, expires=fresh.expires, admin=True, key_id=admin_fingerprint(admin)))
        return redirect(target)
    key = await asyncio.to_thread(ui.runtime.keys.resolve, token) if token else None
    if key is None:
        return ui.render("signin.html", status_code=401, next=target, error="Unknown or revoked API key.")
    if not (key.allows("read") or key.allows("review")):
        error = f"This key has scope {key.scope!r}: it can only send events. Sign in with a read or admin key."
        return ui.render("signin.html", status_code=403, next=target, error=error)
    ui.sign_in(UiSession(nonce=fresh.nonce, expires=fresh.expires, project=key.project, key_id=key.key_id))
    if not key.allows("read") and not target.startswith("/ui/queues"):  # a reviewer's key
        target = "/ui/queues"
    return redirect(target)


@router.post("/signout")
async def signout(ui: VisitorDep) -> Response:
    await ui.form()
    ui.sign_in(anonymous())
    return redirect("/ui/signin")


@router.post("/project")
async def switch_project(ui: UiDep) -> Response:
    """The admin's project picker; a project key's session stays on its project."""
    fields = await ui.form()
    project = first(fields, "project")
    if ui.session.admin and project in ui.session_projects():
        ui.sign_in(ui.session.with_project(project))
    return redirect("/ui")
