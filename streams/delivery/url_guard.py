"""Refuse delivery targets that would turn loopwatch into a proxy into its own network (SSRF).

A monitor's owner chooses the webhook URL, and loopwatch usually runs next to ClickHouse, Kafka and a
cloud metadata endpoint. So a target must be http(s) and every address its host resolves to must be
public. The check runs when a monitor is created (a clear error for the user) and again before every
send, because DNS answers change (rebinding): the sender then connects to the address checked here,
not to a fresh lookup.

URLs are parsed with httpx, the same parser the sender uses, so the host checked is the host contacted.
"""

from __future__ import annotations

import ipaddress
import socket

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeTargetError(ValueError):
    """The URL may not be used as a delivery target; the message says why and how to allow it.

    A ``ValueError`` so pydantic validators can raise it and API layers can map it to a 422.
    """


class UnresolvableTargetError(UnsafeTargetError):
    """The host did not resolve. Refused at creation time; worth retrying at send time (DNS hiccup)."""


def parse_target(url: str) -> httpx.URL:
    """Check the URL's shape (http/https, a host) without touching the network."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeTargetError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise UnsafeTargetError(
            f"URL scheme {parsed.scheme or '(none)'!r} is not allowed; use http:// or https://"
        )
    if not parsed.raw_host:
        raise UnsafeTargetError("URL has no host")
    return parsed


def _refusal_reason(address: IPAddress) -> str | None:
    """Name the class of a non-public address, or None when the address is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1; older Pythons classify the mapped form as global.
        return _refusal_reason(address.ipv4_mapped)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Shared (CGNAT), benchmarking and similar ranges are neither "private" nor reachable publicly.
        ("non-global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def resolve_target(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Resolve the URL's host and return its addresses, refusing any non-public one.

    Every address must pass, not just the first: an attacker's DNS can return a public and a private
    record and let the client's choice decide. ``allow_private`` (tests, on-prem receivers) skips the
    address check but still resolves, so the sender can connect to exactly these addresses.
    """
    parsed = parse_target(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableTargetError(f"host {parsed.host!r} does not resolve: {exc}") from exc

    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        # Scoped IPv6 link-local answers carry "%iface"; the scope does not change the class.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableTargetError(f"host {parsed.host!r} resolved to no addresses")
    if not allow_private:
        for address in addresses:
            reason = _refusal_reason(address)
            if reason is not None:
                raise UnsafeTargetError(
                    f"host {parsed.host!r} resolves to {reason} address {address}; delivery to private "
                    "networks is refused (set LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS=true to allow it)"
                )
    return addresses


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeTargetError`` unless ``url`` is a deliverable target (monitor creation, send time)."""
    resolve_target(url, allow_private=allow_private)
