"""The SSRF guard: only http(s) to public addresses, unless private targets are explicitly allowed.

Literal IPs resolve without DNS, and names are resolved through a patched ``getaddrinfo``: these tests
send no traffic anywhere.
"""

from __future__ import annotations

import pytest

from streams.delivery import UnsafeTargetError, check_target
from streams.delivery.url_guard import UnresolvableTargetError, resolve_target
from tests.delivery.delivery_dns import fake_dns

PRIVATE_TARGETS = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.9/hook", "private"),
    ("https://192.168.1.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:9000/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fd00::1]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "non-global"),
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one decimal number
]


class TestRefused:
    """Private, loopback and other non-public targets are refused with a message naming the reason."""

    @pytest.mark.parametrize(("url", "reason"), PRIVATE_TARGETS)
    def test_private_refused(self, url: str, reason: str) -> None:
        with pytest.raises(UnsafeTargetError, match=reason) as info:
            check_target(url, allow_private=False)
        assert "ALLOW_PRIVATE_WEBHOOKS" in str(info.value)

    @pytest.mark.parametrize(
        "url",
        ["file:///etc/passwd", "ftp://93.184.216.34/x", "gopher://127.0.0.1/", "javascript:alert(1)", "//x"],
    )
    @pytest.mark.parametrize("allow_private", [False, True])
    def test_non_http_schemes_always_refused(self, url: str, allow_private: bool) -> None:
        with pytest.raises(UnsafeTargetError, match="scheme"):
            check_target(url, allow_private=allow_private)

    @pytest.mark.parametrize("url", ["", "http://", "http:///path", "http://exa mple.com/"])
    def test_malformed_refused(self, url: str) -> None:
        with pytest.raises(UnsafeTargetError):
            check_target(url, allow_private=True)

    def test_is_a_value_error(self) -> None:
        """So pydantic validators and API error handlers treat it as bad input."""
        assert issubclass(UnsafeTargetError, ValueError)


class TestAllowed:
    """Public addresses pass; ``allow_private`` opens private ones (tests, on-prem receivers)."""

    @pytest.mark.parametrize(("url", "_reason"), PRIVATE_TARGETS)
    def test_private_allowed_when_configured(self, url: str, _reason: str) -> None:
        check_target(url, allow_private=True)

    @pytest.mark.parametrize(
        "url",
        ["http://93.184.216.34/hook", "https://93.184.216.34:8443/x?y=1", "https://[2606:4700:4700::1111]/"],
    )
    def test_public_literal_accepted(self, url: str) -> None:
        check_target(url, allow_private=False)


class TestNames:
    """Names are judged by every address they resolve to."""

    def test_public_name_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
        assert [str(a) for a in resolve_target("https://hooks.example.com/x", allow_private=False)] == [
            "93.184.216.34"
        ]

    def test_one_private_answer_among_public_refuses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"mixed.example.com": ["93.184.216.34", "10.0.0.5"]})
        with pytest.raises(UnsafeTargetError, match=r"10\.0\.0\.5"):
            check_target("https://mixed.example.com/x", allow_private=False)

    def test_unresolvable_refused_with_its_own_type(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"nowhere.example.com": []})
        with pytest.raises(UnresolvableTargetError, match="does not resolve"):
            check_target("https://nowhere.example.com/x", allow_private=True)
