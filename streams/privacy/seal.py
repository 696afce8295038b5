"""The mark on envelopes the API already redacted, so Kafka workers do not scan them a second time.

The API and the SDK publish to the same topics, and anyone allowed to produce there can set any
header: a plain "already redacted" flag would let an SDK skip redaction. The mark is therefore an
HMAC of the envelope's body under ``LOOPWATCH_ENVELOPE_KEY``, a secret the API and the workers share
and SDKs never hold: a worker skips the scan only when the mark matches the body it received. A
missing, forged or stale mark (the body changed) means the envelope is redacted as any other. Without
the key nothing is marked and workers redact every envelope.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

REDACTED_HEADER = "loopwatch-redacted"

Headers = Iterable[tuple[str | bytes, bytes]] | Mapping[str, bytes]  # as a Kafka client gives them


def seal(key: bytes, body: bytes) -> bytes:
    """The mark of an envelope ``body`` the API redacted."""
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def sealed(key: bytes | None, body: bytes, headers: Headers | None) -> bool:
    """Whether ``body`` carries a valid mark (the API redacted it): never without a key."""
    if not key or not headers:
        return False
    expected = seal(key, body)
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        label = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        if label.lower() == REDACTED_HEADER and isinstance(value, bytes) and hmac.compare_digest(value, expected):
            return True
    return False
