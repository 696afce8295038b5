"""What every dashboard page shares: the route class that secures each response, the signed-in
context pages receive (``UiDep``), server-side rendering and CSRF-checked forms.

Every ``/ui`` response leaves through ``UiRoute``: it gets the Content-Security-Policy and friends,
a sign-in redirect instead of a 401, and an HTML error page instead of FastAPI's JSON for 4xx.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson
from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from api.deps import RuntimeDep
from api.queries.dashboard import projects
from api.report_page import script_json
from api.ui.session import COOKIE, CSRF_FIELD, SESSION_SECONDS, SessionSigner, UiSession, anonymous
from schemas.problems import problem_line
from schemas.times import assume_utc
from streams.keys import ApiKey, admin_fingerprint, is_admin_token
from streams.runtime import Runtime

# Scripts and styles come only from our own origin: no inline script, no eval, chart data in
# <script type="application/json"> blocks that ui.js reads. Plotly inserts its few CSS rules through
# the CSSOM into the <link id="plotly.js-style-global"> stylesheet the base template provides (CSSOM
# edits are not inline styles) and positions its hover labels through element.style (CSSOM again),
# so no 'unsafe-inline' is needed for styles either. The one inline <style> Plotly's bundle would add,
# maplibre's CSS for map traces (we draw none), is taken out of the bundle we serve (api/ui/assets.py).
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_MAX_FORM_BYTES = 256 * 1024


class SignInRequired(Exception):
    """Raised by ``UiDep`` for a visitor who has not signed in; ``UiRoute`` turns it into a redirect."""


def _signer(request: Request, runtime: Runtime) -> SessionSigner:
    """One signer per app, made on first use (not at import time)."""
    signer = getattr(request.app.state, "ui_signer", None)
    if signer is None:
        signer = request.app.state.ui_signer = SessionSigner(runtime.settings.ui_secret)
    return signer


@functools.cache
def templates() -> Environment:
    env = Environment(loader=PackageLoader("api.ui", "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(
        num=fmt_number,
        value=fmt_value,
        pct=fmt_percent,
        usd=fmt_usd,
        ms=fmt_ms,
        when=fmt_time,
        q=quote_path,
        dataset_query=dataset_query,
        plural=plural,
        duration=duration,
    )
    env.globals["json_block"] = json_block
    return env


def json_block(value: Any, element_id: str, kind: str = "chart") -> Markup:
    """``<script type="application/json">`` with data our static JS reads; the JSON is made inert
    (``<``, ``>``, ``&`` escaped) so no name inside can close the element."""
    text = script_json(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode())
    return Markup('<script type="application/json" data-{} id="{}">{}</script>').format(
        kind,
        element_id,
        Markup(text),  # noqa: S704 - script_json made it inert; the id is ours
    )


def fmt_number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def fmt_value(value: float | None) -> str:
    """A statistic as people read it: ``1,030`` and ``12,345.7``, not ``1.03e+03``; four significant
    digits below 1,000; scientific notation only for the very small (p-values)."""
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    if abs(value) >= 0.001:
        return f"{value:.4g}"
    return f"{value:.2e}"


def fmt_percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f}%"


def fmt_usd(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"${value:,.4f}"


def fmt_ms(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:,.0f} ms"


def plural(count: float | None, noun: str, nouns: str = "") -> str:
    """``1 alert``, ``3 alerts``, ``1,200 calls`` (``nouns`` for an irregular plural)."""
    if count is None:
        return f"– {nouns or noun + 's'}"
    return f"{fmt_number(count)} {noun if count == 1 else (nouns or noun + 's')}"


def duration(seconds: int) -> str:
    """``10 s``, ``5 min``, ``1 h``, ``1 d`` (the window or bucket length, as pages say it)."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def fmt_time(value: datetime | None) -> str:
    return "–" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def dataset_query(dataset: dict[str, Any]) -> str:
    """The feedback explorer's query string for a retraining request's ``/v1/feedback/export`` selector."""
    params = dataset.get("params") or {}
    return urlencode([(k, v) for k, value in params.items() for v in (value if isinstance(value, list) else [value])])


def quote_path(value: str) -> str:
    """A path segment: every byte that could end or bend the URL percent-encoded."""
    return quote(value, safe="")


@dataclass
class Ui:
    """The signed-in context of a page: who, which project, and how to render and read forms."""

    request: Request
    runtime: Runtime
    session: UiSession
    signer: SessionSigner

    @property
    def project(self) -> str:
        return self.session.project or ""

    @property
    def actor(self) -> str:
        return "ui:admin" if self.session.admin else f"ui:key:{self.session.key_id}"

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        page = (
            templates()
            .get_template(template)
            .render(
                project=self.project,
                projects=self.session_projects(),
                admin=self.session.admin,
                signed_in=self.session.signed_in,
                csrf_field=CSRF_FIELD,
                csrf=self.signer.csrf_token(self.session),
                path=self.request.url.path,
                **context,
            )
        )
        return HTMLResponse(page, status_code=status_code)

    def session_projects(self) -> list[str]:
        if not self.session.admin:
            return [self.project] if self.project else []
        return getattr(self.request.state, "ui_projects", [])

    async def form(self) -> dict[str, list[str]]:
        """The url-encoded form of a POST, after its CSRF token was checked (403 otherwise)."""
        if not self.request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "forms are sent url-encoded")
        body = await self.request.body()
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "form too large")
        fields: dict[str, list[str]] = {}
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            fields.setdefault(name, []).append(value)
        token = next(iter(fields.get(CSRF_FIELD, [])), None)
        if not self.signer.csrf_ok(self.session, token):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "the form expired or came from another site: reload the page"
            )
        return fields

    def sign_in(self, session: UiSession) -> None:
        """Replace the session (sign in, switch project, sign out) on the response this request makes."""
        self.session = session
        self.request.state.ui_cookie = self.signer.dumps(session)


def parse_moment(name: str, text: str) -> datetime | None:
    """A date-time from a form field: '' is none, naive is UTC (as everywhere in the API)."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: expected an ISO 8601 date-time, e.g. 2026-11-01T00:00"
        ) from None
    return assume_utc(moment)


def parse_interval(text: str) -> int | None:
    """Re-bucketing seconds from a form field ('' = each window), bounded as ``/v1/stats`` bounds it."""
    if not text.strip():
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= 31 * 86400:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "interval: seconds from 1 to 2678400")
    return int(text)


def first(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0].strip()


async def _visitor(request: Request, runtime: RuntimeDep) -> Ui:
    signer = _signer(request, runtime)
    session = signer.loads(request.cookies.get(COOKIE))
    if session is None:
        session = anonymous()
        request.state.ui_cookie = signer.dumps(session)
    if session.signed_in and not session.admin:
        key = session.key_id and await _live_key(runtime, session.key_id)
        if not key or key.project != session.project:  # revoked since: signed out
            session = anonymous()
            request.state.ui_cookie = signer.dumps(session)
        elif not (key.allows("read") or key.allows("review")):  # sign-in refuses such keys; a session of one ends
            request.state.ui_cookie = signer.dumps(anonymous())
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this API key has scope {key.scope!r}: it can only send events"
            )
        else:
            request.state.ui_key = key
    if session.admin:
        admin = runtime.settings.admin_key
        if admin is None or session.key_id != admin_fingerprint(admin):  # the admin key was removed or changed
            session = anonymous()
            request.state.ui_cookie = signer.dumps(session)
        else:
            known = await asyncio.to_thread(projects, runtime.storage)
            request.state.ui_projects = known
            if session.project is None and known:
                session = session.with_project(known[0])
    return Ui(request, runtime, session, signer)


async def _live_key(runtime: Runtime, key_id: str) -> ApiKey | None:
    return await asyncio.to_thread(runtime.keys.live, key_id)


VisitorDep = Annotated[Ui, Depends(_visitor)]


async def _signed_in(ui: VisitorDep) -> Ui:
    if not ui.session.signed_in:
        raise SignInRequired
    key: ApiKey | None = getattr(ui.request.state, "ui_key", None)
    if key is not None and not key.allows("read"):  # a reviewer's key: the review queues only
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this API key reviews: its pages are the review queues (/ui/queues)"
        )
    return ui


UiDep = Annotated[Ui, Depends(_signed_in)]


async def _queue_visitor(ui: VisitorDep) -> Ui:
    """Signed in with a key that reads or reviews (the review queues' pages)."""
    if not ui.session.signed_in:
        raise SignInRequired
    return ui


UiQueuesDep = Annotated[Ui, Depends(_queue_visitor)]


async def _reviewer(ui: UiQueuesDep) -> Ui:
    """A named reviewer: signed in with a key of scope ``review``."""
    key: ApiKey | None = getattr(ui.request.state, "ui_key", None)
    if key is None or not key.allows("review"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "reviewing needs your own key of scope 'review': sign in with it"
        )
    return ui


UiReviewDep = Annotated[Ui, Depends(_reviewer)]


async def _manager(ui: UiDep) -> Ui:
    """A signed-in visitor who may change the project (monitors, acknowledgements): the admin key, or a
    project key of scope ``admin`` or without a scope."""
    key: ApiKey | None = getattr(ui.request.state, "ui_key", None)
    if key is not None and not key.allows("manage"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this API key has scope {key.scope!r}: it reads; sign in with an admin key to change the project",
        )
    return ui


UiManageDep = Annotated[Ui, Depends(_manager)]


def admin_matches(runtime: Runtime, token: str) -> bool:
    return is_admin_token(runtime.settings.admin_key, token)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _error_page(status_code: int, messages: list[str]) -> HTMLResponse:
    page = (
        templates()
        .get_template("error.html")
        .render(status_code=status_code, messages=messages, signed_in=False, projects=[], project="")
    )
    return HTMLResponse(page, status_code=status_code)


def _problems(detail: Any) -> list[str]:
    if isinstance(detail, list):
        return [str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail]
    return [str(detail)]


def secure(response: Response, request: Request) -> Response:
    """Security headers on every /ui response (a page that sets its own CSP, the Evidently report,
    keeps it), and the session cookie when this request created or replaced it."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    cookie = getattr(request.state, "ui_cookie", None)
    if cookie is not None:
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            # Lax, not Strict: a link from Slack or a mail (another site) must arrive signed in. Lax
            # still keeps the cookie off cross-site POSTs, and every form checks its CSRF token.
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


class UiRoute(APIRoute):
    """An APIRoute whose responses are always secured HTML (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                raw = request.scope.get("raw_path") or request.url.path.encode()  # as sent: names may hold %2F
                target = raw.decode("latin-1") + (f"?{request.url.query}" if request.url.query else "")
                response = redirect(f"/ui/signin?next={quote(target, safe='')}")
            except HTTPException as exc:
                response = _error_page(exc.status_code, _problems(exc.detail))
            except RequestValidationError as exc:
                # The location without its first part (``query``, ``path``, ``body``): a form names fields.
                response = _error_page(422, [problem_line(e["loc"][1:], e["msg"]) for e in exc.errors()])
            return secure(response, request)

        return run
