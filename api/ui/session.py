"""Dashboard sessions: a signed cookie naming who signed in, and the CSRF token derived from it.

The cookie holds no secret, only ``{nonce, project, admin, key_id, expires}``, signed with HMAC-SHA256
under ``LOOPWATCH_UI_SECRET``; any replica with the same secret accepts it, none needs a session
table. A project session is re-checked against the key store on each request (through the same short
cache the Bearer path uses), so revoking the key ends its sessions within seconds.

CSRF: every form carries ``HMAC(secret, "csrf:" + nonce)``. A visitor gets an anonymous session (a
nonce, no project) before signing in, so the sign-in form is protected too, and signing in issues a
new nonce (no session fixation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace

import orjson
import structlog
from pydantic import SecretStr

log = structlog.get_logger(__name__)

COOKIE = "lw_ui_session"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class UiSession:
    """Who is looking: one project (a project key) or every project (the admin key), or nobody yet."""

    nonce: str
    expires: int
    project: str | None = None
    admin: bool = False
    key_id: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.admin or self.project is not None

    def with_project(self, project: str) -> UiSession:
        return replace(self, project=project)


def anonymous() -> UiSession:
    return UiSession(nonce=secrets.token_urlsafe(16), expires=int(time.time()) + SESSION_SECONDS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and verifies session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: SecretStr | None) -> None:
        if secret is None:
            # Acceptable for one process (the demo, a laptop); replicas would reject each other's cookies.
            log.warning("ui_secret_generated", hint="set LOOPWATCH_UI_SECRET so sessions survive restarts and replicas")
            self._key = secrets.token_bytes(32)
        else:
            self._key = hashlib.sha256(b"loopwatch-ui:" + secret.get_secret_value().encode()).digest()

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b":" + data, hashlib.sha256).digest()

    def dumps(self, session: UiSession) -> str:
        payload = orjson.dumps(
            {"n": session.nonce, "e": session.expires, "p": session.project, "a": session.admin, "k": session.key_id}
        )
        return f"{_b64(payload)}.{_b64(self._mac(b'session', payload))}"

    def loads(self, value: str | None) -> UiSession | None:
        """The session in a cookie, or None when absent, forged, malformed or expired."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        body, signature = value.split(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(b"session", payload)):
            return None
        try:
            data = orjson.loads(payload)
            session = UiSession(
                nonce=str(data["n"]), expires=int(data["e"]), project=data["p"], admin=bool(data["a"]), key_id=data["k"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, session: UiSession) -> str:
        return _b64(self._mac(b"csrf", session.nonce.encode()))

    def csrf_ok(self, session: UiSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token(session).encode())
