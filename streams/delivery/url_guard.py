"""Refuse delivery targets that would turn loopwatch into a proxy into its own network (SSRF).

A monitor's owner chooses the webhook URL, and loopwatch usually runs next to ClickHouse, Kafka and a
cloud metadata endpoint. So a target must be http(s) and every address its host resolves to must be
public. The check runs when a monitor is created (a clear error for the user) and again before every
send, because DNS answers change (rebinding): the sender then connects to the address checked here,
not to a fresh lookup.

URLs are parsed with httpx, the same parser the sender uses, so the host checked is the host contacted.
Literal hosts are read here, not by the resolver, including the number forms browsers accept
(``2130706433``, ``0x7f.1``, trailing dots), and an IPv6 address is judged together with every IPv4
address it embeds (mapped, 6to4, Teredo, NAT64): ``2002:7f00:1::`` is refused as loopback.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from schemas.channels import UnsafeTargetError, parse_target

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnresolvableTargetError(UnsafeTargetError):
    """The host did not resolve. Refused at creation time; worth retrying at send time (DNS hiccup)."""


# Special-purpose IPv6 prefixes that carry an IPv4 address inside (RFC 6890 registry, RFC 6052, RFC 4380).
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# Refused whatever IPv4 they embed: tunnels and translations whose far end is chosen by relays or by
# the local network rather than by the address, so the embedded IPv4 does not tell where a request lands.
_REFUSED_PREFIXES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_SIX_TO_FOUR, "6to4 tunnel (2002::/16, deprecated by RFC 7526)"),
    (_TEREDO, "Teredo tunnel (2001::/32)"),
    (_NAT64_LOCAL_USE, "local-use NAT64 (64:ff9b:1::/48, network-specific)"),
    (_IPV4_COMPATIBLE, "IPv4-compatible (::/96, deprecated by RFC 4291)"),
)

_IPV4_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries: mapped, 6to4, Teredo (server and client), NAT64, compatible.

    A packet to any of these forms can end up at the IPv4 address (dual-stack sockets, tunnel relays,
    NAT64 gateways), so each is judged like a target of its own. Teredo's client address is stored
    XORed with 0xffffffff; ``ipaddress`` undoes that.
    """
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _class_reason(address: IPAddress) -> str | None:
    """Name the class of a non-public address, or None when the address is public."""
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


def refusal_reason(address: IPAddress) -> str | None:
    """Say why ``address`` may not be contacted (e.g. "loopback address 127.0.0.1"), or None if it may.

    An IPv6 address is refused if it, or any IPv4 address embedded in it, is not public; the tunnel
    prefixes in ``_REFUSED_PREFIXES`` are refused outright. IPv4-mapped and well-known NAT64 addresses
    are judged by their IPv4 alone: ``::ffff:93.184.216.34`` is that host, and on an IPv6-only network
    with DNS64 a public receiver's name resolves to ``64:ff9b::<its IPv4>``.
    """
    if isinstance(address, ipaddress.IPv6Address) and not (address.is_loopback or address.is_unspecified):
        for inner in embedded_ipv4(address):
            inner_reason = _class_reason(inner)
            if inner_reason is not None:
                return f"{address}, which embeds {inner_reason} address {inner}"
        for prefix, name in _REFUSED_PREFIXES:
            if address in prefix:
                return f"{name} address {address}"
        if address.ipv4_mapped is not None or address in _NAT64:
            return None
    reason = _class_reason(address)
    return None if reason is None else f"{reason} address {address}"


def _ipv4_number(part: str) -> int:
    """One dot-separated part of an IPv4 host in WHATWG/inet_aton form: decimal, 0x-hex or 0-octal."""
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


def literal_address(host: str) -> IPAddress | None:
    """The address a literal host means to a URL client, or None when the host is a name to resolve.

    Besides the canonical forms this reads what browsers (WHATWG URL) and ``inet_aton`` read as IPv4:
    one to four parts, each decimal, hex (``0x7f.1``) or octal (``017700000001``), the last filling the
    remaining bytes (``2130706433`` is 127.0.0.1), and a trailing dot (``127.0.0.1.``). Reading these
    here, not in the resolver, makes the verdict the same on every platform and DNS setup. A host whose
    last part is a number but that is no valid IPv4 address is refused, as WHATWG URL parsers do.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _IPV4_NUMBER.fullmatch(parts[-1]):
        return None  # a name (the WHATWG "ends in a number" test)
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except ValueError:
        numbers = []
    if not 1 <= len(numbers) <= 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UnsafeTargetError(f"host {host!r} ends in a number but is not a valid IPv4 address")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return ipaddress.IPv4Address(value)


def resolve_target(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Resolve the URL's host and return its addresses, refusing any non-public one.

    Every address must pass, not just the first: an attacker's DNS can return a public and a private
    record and let the client's choice decide. ``allow_private`` (tests, on-prem receivers) skips the
    address check but still resolves, so the sender can connect to exactly these addresses.
    """
    parsed = parse_target(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    literal = literal_address(host)
    addresses: list[IPAddress] = [] if literal is None else [literal]
    if literal is None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnresolvableTargetError(f"host {parsed.host!r} does not resolve: {exc}") from exc
        for _family, _type, _proto, _canonname, sockaddr in infos:
            # Scoped IPv6 link-local answers carry "%iface"; the scope does not change the class.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise UnresolvableTargetError(f"host {parsed.host!r} resolved to no addresses")
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                raise UnsafeTargetError(
                    f"host {parsed.host!r} resolves to {reason}; delivery to private "
                    "networks is refused (set LOOPWATCH_ALLOW_PRIVATE_WEBHOOKS=true to allow it)"
                )
    return addresses


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeTargetError`` unless ``url`` is a deliverable target (monitor creation, send time)."""
    resolve_target(url, allow_private=allow_private)
