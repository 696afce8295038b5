"""Webhook signatures: receivers prove a body came from loopwatch, unaltered and recently.

The scheme is Stripe's: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``. Signing the
timestamp with the body stops a captured request from being replayed later; receivers reject
timestamps outside a tolerance. Several ``v1`` entries may appear (secret rotation): any match passes.
``verify`` is what receivers (and our tests) run; it never raises on bad input, it says no.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Loopwatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Loopwatch-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={_digest(secret, body, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, v1 signatures) from a header, or None when it is malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return None
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid, fresh signature of ``body`` under ``secret``.

    Stale and future timestamps beyond ``tolerance_seconds`` fail, as do malformed headers. The
    comparison is constant-time so response timing does not reveal how much of a guess was right.
    """
    if not header or not secret:
        return False
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, body, timestamp)
    # Check every candidate (no early exit) so timing does not depend on which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    return matched
