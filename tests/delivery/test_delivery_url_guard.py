"""The SSRF guard: only http(s) to public addresses, unless private targets are explicitly allowed.

Literal IPs resolve without DNS, and names are resolved through a patched ``getaddrinfo``: these tests
send no traffic anywhere.
"""

from __future__ import annotations

import re
import socket
from ipaddress import ip_address

import pytest
from pydantic import SecretStr, ValidationError

from schemas.channels import WebhookChannel
from streams.delivery import UnsafeTargetError, check_target
from streams.delivery.url_guard import UnresolvableTargetError, resolve_target
from tests.delivery.delivery_dns import fake_dns

# (url, words the refusal must contain, the address a resolver-independent reading gives)
PRIVATE_TARGETS = [
    ("http://127.0.0.1:8080/hook", "loopback", "127.0.0.1"),
    ("http://localhost/hook", "loopback", "127.0.0.1"),
    ("http://10.1.2.3/hook", "private", "10.1.2.3"),
    ("http://172.16.0.9/hook", "private", "172.16.0.9"),
    ("https://192.168.1.10/hook", "private", "192.168.1.10"),
    ("http://169.254.169.254/latest/meta-data/", "link-local", "169.254.169.254"),
    ("http://[::1]:9000/hook", "loopback", "::1"),
    ("http://[fe80::1]/hook", "link-local", "fe80::1"),
    ("http://[fd00::1]/hook", "private", "fd00::1"),
    ("http://0.0.0.0/hook", "unspecified", "0.0.0.0"),  # noqa: S104 - an address to refuse, not to bind
    ("http://224.0.0.1/hook", "multicast", "224.0.0.1"),
    ("http://240.0.0.1/hook", "reserved", "240.0.0.1"),
    ("http://100.64.0.1/hook", "non-global", "100.64.0.1"),
    # IPv4 in the number forms browsers and inet_aton accept, and with a trailing dot
    ("http://2130706433/hook", "loopback address 127.0.0.1", "127.0.0.1"),  # one decimal number
    ("http://0x7f.1/hook", "loopback address 127.0.0.1", "127.0.0.1"),  # hex, last part fills 3 bytes
    ("http://0x7F000001/hook", "loopback address 127.0.0.1", "127.0.0.1"),
    ("http://017700000001/hook", "loopback address 127.0.0.1", "127.0.0.1"),  # octal
    ("http://127.1/hook", "loopback address 127.0.0.1", "127.0.0.1"),
    ("http://127.0.0.1./hook", "loopback address 127.0.0.1", "127.0.0.1"),
    ("http://0251.0376.0251.0376./latest/", "link-local address 169.254.169.254", "169.254.169.254"),
    # IPv6 forms that carry an IPv4 address: judged by it too
    ("http://[::ffff:127.0.0.1]/hook", "embeds loopback address 127.0.0.1", "::ffff:7f00:1"),  # IPv4-mapped
    ("http://[::ffff:a9fe:a9fe]/hook", "embeds link-local address 169.254.169.254", "::ffff:a9fe:a9fe"),
    ("http://[2002:7f00:1::]/hook", "embeds loopback address 127.0.0.1", "2002:7f00:1::"),  # 6to4
    ("http://[2002:a9fe:a9fe::]/", "embeds link-local address 169.254.169.254", "2002:a9fe:a9fe::"),
    ("http://[64:ff9b::7f00:1]/hook", "embeds loopback address 127.0.0.1", "64:ff9b::7f00:1"),  # NAT64
    ("http://[64:ff9b::a9fe:a9fe]/", "embeds link-local address 169.254.169.254", "64:ff9b::a9fe:a9fe"),
    # Teredo: server 127.0.0.1; then client 127.0.0.1 stored XORed (80ff:fffe) behind a public server
    ("http://[2001:0:7f00:1::]/hook", "embeds loopback address 127.0.0.1", "2001:0:7f00:1::"),
    ("http://[2001:0:5db8:d822:0:0:80ff:fffe]/", "embeds loopback address 127.0.0.1", "2001:0:5db8:d822::80ff:fffe"),
    ("http://[::7f00:1]/hook", "embeds loopback address 127.0.0.1", "::7f00:1"),  # IPv4-compatible
    # special-purpose prefixes refused outright, even around a public IPv4 (93.184.216.34 = 5db8:d822)
    ("http://[2002:5db8:d822::1]/hook", "6to4", "2002:5db8:d822::1"),
    ("http://[2001:0:5db8:d822::a247:27dd]/", "Teredo", "2001:0:5db8:d822::a247:27dd"),
    ("http://[64:ff9b:1::5db8:d822]/hook", "local-use NAT64", "64:ff9b:1::5db8:d822"),
    ("http://[::5db8:d822]/hook", "IPv4-compatible", "::5db8:d822"),
    ("http://[::ffff:0:5db8:d822]/hook", "reserved", "::ffff:0:5db8:d822"),  # IPv4-translated (SIIT)
]


class TestRefused:
    """Private, loopback and other non-public targets are refused with a message naming the reason."""

    @pytest.mark.parametrize(("url", "reason", "_address"), PRIVATE_TARGETS)
    def test_private_refused(self, url: str, reason: str, _address: str) -> None:
        with pytest.raises(UnsafeTargetError, match=re.escape(reason)) as info:
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

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("", "scheme '(none)' is not allowed"),
            ("http://", "URL has no host"),
            ("http:///path", "URL has no host"),
            ("http://[::1/x", "not a valid URL"),
        ],
    )
    def test_malformed_refused(self, url: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Refused for its shape: every lookup here would answer with a public address, so only the shape
        check can refuse, and the resolver is never asked."""
        lookups: list[str] = []

        def public_for_any_name(host: str, port: object, *args: object, **kwargs: object) -> list[object]:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

        monkeypatch.setattr(socket, "getaddrinfo", public_for_any_name)
        with pytest.raises(UnsafeTargetError, match=re.escape(reason)) as info:
            check_target(url, allow_private=True)
        assert not isinstance(info.value, UnresolvableTargetError)
        assert lookups == []

    @pytest.mark.parametrize("url", ["http://1.2.3.4.5/", "http://4294967296/", "http://1..2/", "http://0x1g.1/"])
    @pytest.mark.parametrize("allow_private", [False, True])
    def test_numeric_host_that_is_no_ipv4_refused(self, url: str, allow_private: bool) -> None:
        """A host ending in a number is read as IPv4 by browsers; if it is not one, the URL is invalid."""
        with pytest.raises(UnsafeTargetError, match="not a valid IPv4"):
            check_target(url, allow_private=allow_private)

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "http:///path"])
    def test_channel_with_a_refused_url_is_invalid_input(self, url: str) -> None:
        """A ``ValueError``, so a channel model turns it into a validation error on the URL field (the API's 422)."""
        with pytest.raises(ValidationError) as info:
            WebhookChannel(url=url, secret=SecretStr("s" * 16))
        [problem] = info.value.errors(include_url=False)
        assert problem["loc"] == ("url",)
        assert problem["type"] == "value_error"


class TestAllowed:
    """Public addresses pass; ``allow_private`` opens private ones (tests, on-prem receivers)."""

    @pytest.mark.parametrize(("url", "_reason", "address"), PRIVATE_TARGETS)
    def test_private_allowed_when_configured(self, url: str, _reason: str, address: str) -> None:
        """Allowed, and the address handed to the sender is the one the URL means (no resolver guess)."""
        assert ip_address(address) in resolve_target(url, allow_private=True)

    @pytest.mark.parametrize(
        ("url", "address"),
        [
            ("http://93.184.216.34/hook", "93.184.216.34"),
            ("https://93.184.216.34:8443/x?y=1", "93.184.216.34"),
            ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
            ("http://1572395042/", "93.184.216.34"),
            ("http://93.184.216.34./", "93.184.216.34"),
            ("http://[::ffff:93.184.216.34]/", "::ffff:5db8:d822"),  # IPv4-mapped public
            ("http://[64:ff9b::93.184.216.34]/", "64:ff9b::5db8:d822"),  # DNS64 answer for an IPv4-only receiver
        ],
    )
    def test_public_literal_accepted(self, url: str, address: str) -> None:
        assert resolve_target(url, allow_private=False) == [ip_address(address)]


class TestNames:
    """Names are judged by every address they resolve to."""

    def test_public_name_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
        assert [str(a) for a in resolve_target("https://hooks.example.com/x", allow_private=False)] == ["93.184.216.34"]

    def test_one_private_answer_among_public_refuses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"mixed.example.com": ["93.184.216.34", "10.0.0.5"]})
        with pytest.raises(UnsafeTargetError, match=r"10\.0\.0\.5"):
            check_target("https://mixed.example.com/x", allow_private=False)

    def test_unresolvable_refused_with_its_own_type(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake_dns(monkeypatch, {"nowhere.example.com": []})
        with pytest.raises(UnresolvableTargetError, match="does not resolve"):
            check_target("https://nowhere.example.com/x", allow_private=True)

    @pytest.mark.parametrize(
        ("answer", "reason"),
        [
            ("2002:a9fe:a9fe::", "embeds link-local address 169.254.169.254"),
            ("64:ff9b::a00:5", "embeds private address 10.0.0.5"),
            ("::ffff:10.0.0.5", "embeds private address 10.0.0.5"),
            ("2001:0:5db8:d822::f5ff:fffa", "embeds private address 10.0.0.5"),  # Teredo client, XORed
        ],
    )
    def test_ipv6_answer_embedding_a_private_ipv4_refuses(
        self, monkeypatch: pytest.MonkeyPatch, answer: str, reason: str
    ) -> None:
        """A DNS name, not only a literal, is judged by the IPv4 inside its IPv6 records."""
        fake_dns(monkeypatch, {"tunnel.example.com.": ["93.184.216.34", answer]})
        with pytest.raises(UnsafeTargetError, match=re.escape(reason)):
            check_target("https://tunnel.example.com./x", allow_private=False)
