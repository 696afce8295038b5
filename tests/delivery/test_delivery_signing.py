"""Webhook signatures: the documented format, and verification that says no to anything off."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from streams.delivery import sign, verify

SECRET = "whsec_0123456789abcdef"  # noqa: S105 - test-only signing secret
BODY = b'{"alert_id":"a1","value":0.42}'
T = 1_741_082_400


class TestSign:
    """``sign`` produces ``t=<unix>,v1=<hex HMAC-SHA256(secret, "t." + body)>``."""

    def test_format_matches_documented_scheme(self) -> None:
        expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"

    def test_depends_on_timestamp(self) -> None:
        assert sign(SECRET, BODY, T) != sign(SECRET, BODY, T + 1)


class TestVerify:
    """``verify`` accepts exactly fresh signatures of this body under this secret."""

    def test_round_trip(self) -> None:
        assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)

    def test_wrong_secret(self) -> None:
        assert not verify("whsec_somethingelse00", BODY, sign(SECRET, BODY, T), now=T)

    def test_tampered_body(self) -> None:
        assert not verify(SECRET, BODY.replace(b"0.42", b"0.01"), sign(SECRET, BODY, T), now=T)

    def test_timestamp_cannot_be_swapped(self) -> None:
        digest = sign(SECRET, BODY, T).split(",")[1]
        assert not verify(SECRET, BODY, f"t={T + 60},{digest}", now=T + 60)

    @pytest.mark.parametrize("age", [301, -301, 10_000])
    def test_stale_or_future_rejected(self, age: int) -> None:
        assert not verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + age)

    def test_tolerance_is_configurable(self) -> None:
        header = sign(SECRET, BODY, T)
        assert verify(SECRET, BODY, header, now=T + 299)
        assert not verify(SECRET, BODY, header, now=T + 30, tolerance_seconds=10)

    def test_any_of_several_signatures(self) -> None:
        good = sign(SECRET, BODY, T).split(",")[1]
        assert verify(SECRET, BODY, f"t={T},v1={'0' * 64},{good}", now=T)

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "garbage",
            f"t={T}",
            "v1=abc",
            f"t=abc,v1={'0' * 64}",
            f"t={T},t={T},v1={'0' * 64}",
            f"t={T},v0={'0' * 64}",
            f"t=-{T},v1={'0' * 64}",
            f"t={T},v1=ünïcode",
            ",,,",
        ],
    )
    def test_malformed_headers_rejected(self, header: str | None) -> None:
        assert verify(SECRET, BODY, header, now=T) is False

    def test_empty_secret_never_verifies(self) -> None:
        assert not verify("", BODY, sign("", BODY, T), now=T)
